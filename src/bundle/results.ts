// What a bundle push reports: per image, as events while it runs, and the counters behind the summary.
import type { Digest } from '../core/digest.js'

export type ImageStatus = 'pushed' | 'unchanged' | 'failed' | 'planned' | 'skipped'

export interface ImageResult {
  /** The name in the bundle; undefined for an image without one. */
  source: string | undefined
  archive: string
  /** `<namespace>/<path>:<tag>` (or `@digest`) in the destination registry, '' when it has none. */
  destination: string
  digest: Digest | undefined
  status: ImageStatus
  error?: string
}

export type PushEvent =
  | { type: 'read.done'; bytes: number; images: number }
  /** Blobs whose streamed upload failed are sent again from a second reading of the bundle file. */
  | { type: 'read.again'; blobs: number }
  | { type: 'image.start'; source: string | undefined; destination: string }
  /** A blob finished uploading; `bytesPushed` is the run's total so far (it only grows). */
  | { type: 'blob.progress'; digest: Digest; size: number; bytesPushed: number }
  /** An image's bytes in place grew (ImageProgress.bytesDone); often, so the CLI only draws it. */
  | { type: 'image.progress'; destination: string; bytesDone: number; bytesTotal: number }
  | { type: 'image.done'; source: string | undefined; destination: string; digest: Digest; unchanged: boolean }
  | { type: 'image.failed'; source: string | undefined; destination: string; error: string }

/** Where one image stands while the images are pushed (after the bundle was read). */
export type ImageState = 'waiting' | 'pushing' | 'pushed' | 'unchanged' | 'failed' | 'skipped'

export interface ImageProgress {
  /** The name in the bundle, or the destination for an image without one. */
  name: string
  state: ImageState
  /**
   * Bytes of the image's blobs in place in its repository: found, mounted or uploaded, plus what
   * uploads in flight have sent. Never less than before: a retried upload counts again from its
   * start without moving it back.
   */
  bytesDone: number
  bytesTotal: number
}

export interface PushStats {
  /** Bytes of the bundle file read so far (before decompression). */
  readBytes: number
  blobsPushed: number
  blobsSkipped: number
  blobsMounted: number
  /** Blob bytes uploaded. */
  bytesPushed: number
  /** The most bytes spooled on disk at once. */
  spoolPeak: number
  /** Images left out by --include/--exclude. */
  imagesExcluded: number
  phase: 'reading' | 'pushing' | 'done'
}

/** The counters of a push that has not read a byte yet. */
export function initialPushStats(): PushStats {
  return {
    readBytes: 0,
    blobsPushed: 0,
    blobsSkipped: 0,
    blobsMounted: 0,
    bytesPushed: 0,
    spoolPeak: 0,
    imagesExcluded: 0,
    phase: 'reading',
  }
}

/** What became of the staging repository blobs were uploaded into while the bundle streamed by. */
export interface StagingOutcome {
  repository: string
  /** Blobs this run found or put there. */
  blobs: number
  /** Unlinked again after every image landed. */
  removed: number
  /** Why blobs were left there (a rerun reuses them). */
  kept?: string
}

export interface PushReport {
  images: ImageResult[]
  stats: PushStats
  staging?: StagingOutcome
  /** Set when nothing could be done (an unreadable bundle, a refused login). */
  fatal?: string
}
