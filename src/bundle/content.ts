// What reading a bundle leaves behind: every blob seen (by digest), the small JSON documents
// (manifests, indexes, configs) kept in memory, and the image layouts found in each archive.
import type { Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'
import type { Compression } from './magic.js'

export interface BlobRecord {
  digest: Digest
  size: number
  /** Where it was read, for messages: `bundle.tar.xz!/blobs/sha256/…`. */
  origin: string
  /** Bytes that can be read again: a folder's file, or a small document kept in memory. */
  open?: () => Readable
  /** With `open`: the same bytes in reused buffers (lent-chunks.ts), for an upload that takes one chunk at a time. */
  lend?: () => AsyncIterable<Buffer>
  /** A blob uploaded while the archive streamed by: settles once it is in the staging repository. */
  staged?: Promise<void>
  /** Why the blob cannot be used (its bytes do not match the digest it was filed under). */
  problem?: string
  /** How a loose docker-save layer file is compressed, by the bundle or on the way (undefined: a plain tar). */
  compression?: Compression | undefined
}

/** One archive (the bundle itself, or a nested one): its files by path, for docker-save manifests. */
export interface ArchiveFiles {
  label: string
  /** Files read by path (docker-save layers and configs) → the digest of their bytes. */
  paths: Map<string, Digest>
  /** Symlinks and hard links → the path they name, resolved. */
  links: Map<string, string>
}

/** An image layout or docker-save found in an archive, at `prefix` (a folder inside it, or ''). */
export interface Scope {
  archive: ArchiveFiles
  prefix: string
  /** OCI image layout: index.json. */
  indexJson?: Buffer
  /** A Hauler haul's full index (hauler.ts), read in place of index.json. */
  haulerIndexJson?: Buffer
  /** Whether blobs/ entries were seen: then it is an OCI layout, and a bad index.json an error. */
  hasBlobs?: boolean
  /** docker save: manifest.json. */
  dockerManifest?: Buffer
}

export interface BundleContent {
  blobs: Map<Digest, BlobRecord>
  /** Small JSON blobs by digest (verified): manifests, indexes, configs. */
  documents: Map<Digest, Buffer>
  scopes: Scope[]
  /** Plain docker-save layers compressed on the way (--layer-compression): the plain tar's digest → the blob pushed. */
  compressedLayers: Map<Digest, Digest>
  /** Archives that could not be read to the end; nothing found inside them is pushed. */
  broken: Array<{ label: string; error: string }>
}

/** Whether `label` is `archive` or nested inside it. */
export function isWithin(label: string, archive: string): boolean {
  return label === archive || label.startsWith(`${archive}!/`)
}
