// When a manifest or tag was pushed and last pulled: recorded by the storage lifecycle (in memory,
// flushed in batches), read by listings such as the Harbor-compatible API.
import type { Digest } from './digest.js'

/** Milliseconds since the epoch; undefined when never seen (since recording began). */
export interface AccessTime {
  pushTime?: number
  pullTime?: number
}

export interface AccessTimeReader {
  /** `repository` is the stored name (pushed repositories by their own name). */
  manifest(repository: string, digest: Digest): Promise<AccessTime>
  tag(repository: string, tag: string): Promise<AccessTime>
}
