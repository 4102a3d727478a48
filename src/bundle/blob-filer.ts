// Where the blobs a bundle reader meets go (collector.ts finds them): small JSON documents into
// memory; other blobs straight to the staging repository (a file that can be read again is
// uploaded from where it lies), streamed into the sink as they pass (`ingest`: a server import's
// local storage, or a registry's PUT for a blob the bundle names by digest), through the spool
// (tee: the upload follows the spool file as it is written), or only hashed (a dry run, a blob
// the destination has). Plain docker-save layers can be compressed on the way (--layer-compression).
// Every blob is checked against the digest the bundle names (here, or by the registry it streams
// to); a mismatch is filed as a problem.
import { Readable } from 'node:stream'
import { digestBytes, tryParseDigest, type Digest } from '../core/digest.js'
import { maxManifestBytes } from '../core/manifest.js'
import type { BlobRecord, BundleContent } from './content.js'
import { reopenEntry, type Entry } from './entries.js'
import { peek } from './head-stream.js'
import { compressLayer } from './layer-compression.js'
import { fileChunks } from './lent-chunks.js'
import { isCompression, sniff, sniffLength } from './magic.js'
import { digestOf, transformedDigestOf, verified, type SpooledBlob, type Spool } from './spool.js'

/** Uploads a blob to the staging repository; `open` may be called again for a retry. */
export type Stage = (blob: {
  digest: Digest
  size: number
  origin: string
  open: () => Readable
  /** The same bytes in reused buffers (lent-chunks.ts). */
  lend?: () => AsyncIterable<Buffer>
}) => Promise<void>

/**
 * Stores a blob from the bytes as they pass (a sink writing into local storage needs no spool).
 * Resolves to the digest of the bytes; it is stored only when that is `expected` (or none was).
 */
export type Ingest = (blob: { stream: Readable; size: number; expected: Digest | undefined; origin: string }) => Promise<Digest>

export interface BlobFilerOptions {
  /** Absent in a dry run: blobs are only hashed. */
  stage?: Stage
  /** Takes the place of the spool and `stage` when set. */
  ingest?: Ingest
  /**
   * Ingest only blobs whose digest the bundle names (a registry's upload carries it up front); a
   * layer named by its path goes through the spool.
   */
  ingestNamedOnly?: boolean
  /** Whether a blob whose digest the bundle names is in the staging repository already. */
  isStaged?: (digest: Digest) => Promise<boolean>
  spool: Spool
  /** Compresses plain docker-save layers on the way (--layer-compression); not with `ingest`. */
  layerCompression?: 'gzip' | 'zstd' | undefined
}

export class BlobFiler {
  readonly #content: BundleContent
  readonly #options: BlobFilerOptions
  readonly #uploads: Array<Promise<void>> = []

  constructor(content: BundleContent, options: BlobFilerOptions) {
    this.#content = content
    this.#options = options
  }

  /** A small JSON document (a docker save's image config) kept in memory; returns its digest. */
  document(bytes: Buffer, origin: string): Digest {
    const digest = digestBytes(bytes)
    this.#content.documents.set(digest, bytes)
    this.#remember({ digest, size: bytes.length, origin, open: () => Readable.from([bytes]) })
    return digest
  }

  /**
   * Files a blob: small JSON documents into memory, everything else through the spool to the
   * staging repository. Returns its digest, or undefined when its bytes do not match `expected`.
   */
  async file(entry: Entry, origin: string, expected: string | undefined): Promise<Digest | undefined> {
    const expectedDigest = expected === undefined ? undefined : tryParseDigest(expected)
    if (expected !== undefined && expectedDigest === undefined) return undefined
    const known = expectedDigest && this.#content.blobs.get(expectedDigest)
    if (known && known.problem === undefined) return expectedDigest
    const { head, stream } = await peek(entry.read(), sniffLength)
    const compression = sniff(head)
    if (entry.size <= maxManifestBytes && head.subarray(0, 1).toString() === '{') {
      const bytes = await collect(stream)
      const digest = digestBytes(bytes)
      if (!this.#matches(expectedDigest, digest, origin, bytes.length)) return undefined
      this.#content.documents.set(digest, bytes)
      this.#remember({ digest, size: bytes.length, origin, open: () => Readable.from([bytes]) })
      return digest
    }
    const record: BlobRecord = { digest: expectedDigest ?? ('' as Digest), size: entry.size, origin }
    if (compression === 'tar' || isCompression(compression)) record.compression = compression === 'tar' ? undefined : compression
    const { layerCompression, ingestNamedOnly } = this.#options
    const ingest = expectedDigest === undefined && ingestNamedOnly === true ? undefined : this.#options.ingest
    if (expectedDigest === undefined && !isCompression(compression) && layerCompression !== undefined && ingest === undefined) {
      return this.#readCompressed(entry, stream, record, layerCompression)
    }
    if (entry.file !== undefined) {
      // A folder's file is read when it is uploaded, and verified then; a layer named by path needs its digest now.
      if (expectedDigest === undefined) record.digest = (await digestOf(stream)).digest
      else stream.destroy()
      const digest = record.digest
      record.open = () => verified(() => reopenEntry(entry), digest, record.size)
      const { start, end } = entry.range ?? { start: 0, end: entry.size }
      // Checked by the registry the PUT goes to, as a streamed blob is: hashing here too cost the
      // CLI 0.7 CPU s per GiB on the cores the registry needs (bench/README.md, #15 eighth round).
      record.lend = () => fileChunks(entry.file!, start, end)
      this.#remember(record)
      return record.digest
    }
    if (ingest !== undefined) {
      const staged = expectedDigest !== undefined && (await this.#options.isStaged?.(expectedDigest)) === true
      const digest = staged ? (await digestOf(stream)).digest : await ingest({ stream, size: entry.size, expected: expectedDigest, origin })
      if (!this.#matches(expectedDigest, digest, origin, entry.size)) return undefined
      record.digest = digest
      record.staged = Promise.resolve()
      this.#remember(record)
      return digest
    }
    const stage = this.#options.stage
    // Already staged (a second run, or one after a crash): checked, never written to disk.
    const staged = stage !== undefined && expectedDigest !== undefined && (await this.#options.isStaged?.(expectedDigest)) === true
    if (stage === undefined || staged) {
      const { digest } = await digestOf(stream)
      if (!this.#matches(expectedDigest, digest, origin, entry.size)) return undefined
      record.digest = digest
      if (staged) record.staged = Promise.resolve()
      this.#remember(record)
      return digest
    }
    if (expectedDigest !== undefined) return this.#tee(stage, stream, record, expectedDigest)
    // A layer named by its path: its digest is known once it has been read.
    await this.#stageSpooled(stage, await this.#options.spool.write(stream, entry.size), record)
    return record.digest
  }

  /**
   * A plain docker-save layer with --layer-compression: compressed as it is read, the compressed
   * bytes spooled and uploaded. Filed under the compressed digest, and returned (the path's digest)
   * as the plain tar's, the config's diff ID; `compressedLayers` links the two.
   */
  async #readCompressed(entry: Entry, stream: Readable, record: BlobRecord, kind: 'gzip' | 'zstd'): Promise<Digest> {
    const compress = (plain: Readable): Readable => compressLayer(plain, kind)
    record.compression = kind
    const stage = this.#options.stage
    let plain: Digest
    if (entry.file !== undefined || stage === undefined) {
      // A folder's file is compressed again (to the same bytes) when uploaded, and verified then; a dry run only hashes.
      const hashed = await transformedDigestOf(stream, compress)
      Object.assign(record, { digest: hashed.digest, size: hashed.size })
      if (entry.file !== undefined) record.open = () => verified(() => compress(reopenEntry(entry)), hashed.digest, hashed.size)
      this.#remember(record)
      plain = hashed.plain.digest
    } else {
      const spooled = await this.#options.spool.write(stream, entry.size, compress)
      await this.#stageSpooled(stage, spooled, record)
      plain = spooled.plain.digest
    }
    this.#content.compressedLayers.set(plain, record.digest)
    return plain
  }

  /** Uploads a spooled blob (unless it is uploading, or staged already), filing it as `record`; the spool file goes once uploaded. */
  async #stageSpooled(stage: Stage, spooled: SpooledBlob, record: BlobRecord): Promise<void> {
    record.digest = spooled.digest
    record.size = spooled.size
    const previous = this.#content.blobs.get(spooled.digest)
    if (previous?.staged !== undefined || previous?.open !== undefined) return spooled.release()
    if ((await this.#options.isStaged?.(spooled.digest)) === true) {
      await spooled.release()
      record.staged = Promise.resolve()
      this.#remember(record)
      return
    }
    record.staged = this.#track(
      stage({ digest: spooled.digest, size: spooled.size, origin: record.origin, open: spooled.open, lend: spooled.lend }).finally(() =>
        spooled.release(),
      ),
    )
    this.#remember(record)
  }

  /**
   * A blob whose digest the bundle names: its upload starts at once and reads the spool file as
   * it is written (spool.ts `tee`), so reading and uploading overlap, for several blobs at a time.
   */
  async #tee(stage: Stage, stream: AsyncIterable<Buffer>, record: BlobRecord, digest: Digest): Promise<Digest | undefined> {
    const { open, lend, spooled } = this.#options.spool.tee(stream, record.size, digest)
    const staging = stage({ digest, size: record.size, origin: record.origin, open, lend }).finally(async () => {
      await (await spooled.catch(() => undefined))?.release()
    })
    this.#track(staging)
    const blob = await spooled
    if (!this.#matches(digest, blob.digest, record.origin, record.size)) return undefined
    record.staged = staging
    this.#remember(record)
    return digest
  }

  /** Keeps an upload for settled(); its failure is for the images that need the blob to report. */
  #track(upload: Promise<void>): Promise<void> {
    upload.catch(() => undefined)
    this.#uploads.push(upload)
    return upload
  }

  /** Waits until every upload started while reading has ended, one way or the other. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#uploads)
  }

  #matches(expected: Digest | undefined, actual: Digest, origin: string, size: number): boolean {
    if (expected === undefined || expected === actual) return true
    if (!this.#content.blobs.has(expected)) {
      this.#content.blobs.set(expected, {
        digest: expected,
        size,
        origin,
        problem: `${origin}: content does not match its digest (${size} bytes hash to ${actual})`,
      })
    }
    return false
  }

  #remember(record: BlobRecord): void {
    const previous = this.#content.blobs.get(record.digest)
    if (previous === undefined || previous.problem !== undefined) this.#content.blobs.set(record.digest, record)
  }
}

export async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}
