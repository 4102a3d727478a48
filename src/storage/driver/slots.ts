// A counting semaphore: acquire() waits, in order, for one of `size` slots; release() hands the
// slot to the next waiter. Used for the S3 requests in flight and the S3 parts in flight.
export class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor(readonly size: number) {
    this.#free = size
  }

  get inUse(): number {
    return this.size - this.#free
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  release(): void {
    const next = this.#waiting.shift()
    if (next) next()
    else this.#free++
  }
}
