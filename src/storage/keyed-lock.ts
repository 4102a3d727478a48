/**
 * Serialises async work per key (e.g. appends to one upload session), so two requests on the
 * same key never interleave their writes. Keys with no waiter are dropped, so the map stays small.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>()

  /** Whether work on `key` is running or queued. */
  busy(key: string): boolean {
    return this.tails.has(key)
  }

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve()
    const current = previous.then(work, work)
    const tail = current.catch(() => {})
    this.tails.set(key, tail)
    try {
      return await current
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}
