// What replicas on one storage tell each other so that eviction and GC on one never delete a blob
// another is reading or writing, and so that one maintenance pass runs at a time. With a shared
// store (Redis) a use is a short-lived mark every replica sees; without one each replica knows only
// its own uses, and the GC grace period protects what another replica writes.

export interface ClusterActivity {
  /** False without a shared store: marks stay in this process and every pass runs. */
  readonly shared: boolean
  /** Marks `digest` in use by this replica until the returned function is called (and briefly after). */
  use(digest: string): () => void
  /** Which of `digests` another replica (or this one) marked in use. */
  inUse(digests: readonly string[]): Promise<Set<string>>
  /** Runs `pass` unless another replica runs the pass called `name` now; undefined when it was skipped. */
  exclusive<T>(name: string, pass: () => Promise<T>): Promise<T | undefined>
}

/** One replica alone, or replicas with nothing shared: no marks across processes, every pass runs. */
export const unsharedActivity: ClusterActivity = {
  shared: false,
  use: () => () => {},
  inUse: () => Promise.resolve(new Set()),
  exclusive: (_name, pass) => pass(),
}
