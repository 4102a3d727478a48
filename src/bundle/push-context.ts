// What the parts of a bundle push share (importer.ts runs it; staging.ts, recall.ts and
// image-pusher.ts each do one part): the destination, the counters, one limit on requests in
// flight, the run's abort signal, and where each blob already is, to mount it from there.
import type { Digest } from '../core/digest.js'
import type { Limiter } from './limiter.js'
import type { PushEvent, PushStats } from './results.js'
import type { BundleSink } from './sink.js'

export interface PushContext {
  sink: BundleSink
  stats: PushStats
  /** Blob requests in flight at once (--concurrency). */
  limiter: Limiter
  signal: AbortSignal
  /** Per digest, a repository of the destination holding it (this run uploaded it there, found it there, or an earlier run pushed it). */
  homes: Map<Digest, Promise<string>>
  /** Records a failure that ends the whole run (a refused login), aborting what is in flight. */
  fail(err: unknown): void
  onEvent?: ((event: PushEvent) => void) | undefined
}

/** Counts an uploaded blob. */
export function countPushed(context: PushContext, digest: Digest, size: number): void {
  context.stats.blobsPushed++
  context.stats.bytesPushed += size
  context.onEvent?.({ type: 'blob.progress', digest, size, bytesPushed: context.stats.bytesPushed })
}

export function repositoryIn(namespace: string, path: string): string {
  return namespace === '' ? path : `${namespace}/${path}`
}
