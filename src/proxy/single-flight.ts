/**
 * Coalesces concurrent calls with the same key into one execution whose result every caller
 * shares. The entry is dropped when it settles, so a later call starts afresh.
 */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>()

  /** Runs `work` unless a call for `key` is in flight; `joined` tells which happened. */
  run(key: string, work: () => Promise<T>, joined?: () => void): Promise<T> {
    const existing = this.inFlight.get(key)
    if (existing) {
      joined?.()
      return existing
    }
    const promise = work().finally(() => this.inFlight.delete(key))
    this.inFlight.set(key, promise)
    return promise
  }

  get size(): number {
    return this.inFlight.size
  }
}
