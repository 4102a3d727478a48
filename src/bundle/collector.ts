// Reads a bundle in one pass: a file (compressed or not, by its bytes) or a folder, nested
// archives included, filing what it finds into BundleContent. Blobs that stream by are handed
// to `stage` at once (through the spool) so nothing has to be read twice; small JSON documents
// are kept in memory until the archive has ended and the manifests can be matched up.
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { posix } from 'node:path'
import { Readable } from 'node:stream'
import { digestBytes, tryParseDigest, type Digest } from '../core/digest.js'
import { maxManifestBytes } from '../core/manifest.js'
import type { ArchiveFiles, BlobRecord, BundleContent, Scope } from './content.js'
import { decompress } from './decompress.js'
import { folderEntries, normalisePath, reopenEntry, tarEntries, type Entry } from './entries.js'
import { peek } from './head-stream.js'
import { isCompression, sniff, sniffLength } from './magic.js'
import { readSplitPackage, splitPackageOf } from './split-parts.js'
import { isPlainTar, tarFileEntries } from './tar-file.js'
import { compressLayer } from './layer-compression.js'
import { digestOf, transformedDigestOf, verified, type SpooledBlob, type Spool } from './spool.js'

/** Uploads a blob to the staging repository; `open` may be called again for a retry. */
export type Stage = (blob: { digest: Digest; size: number; origin: string; open: () => Readable }) => Promise<void>

/**
 * Stores a blob from the bytes as they pass (a sink writing into local storage needs no spool).
 * Resolves to the digest of the bytes; it is stored only when that is `expected` (or none was).
 */
export type Ingest = (blob: { stream: Readable; size: number; expected: Digest | undefined; origin: string }) => Promise<Digest>

/** A bundle that arrives as a stream (an HTTP request body, an object store read), named `label` in messages. */
export interface StreamSource {
  stream: Readable
  label: string
}

export interface CollectorOptions {
  /** Absent in a dry run: blobs are only hashed. */
  stage?: Stage
  /** Takes the place of the spool and `stage` when set. */
  ingest?: Ingest
  /** Whether a blob whose digest the bundle names is in the staging repository already. */
  isStaged?: (digest: Digest) => Promise<boolean>
  spool: Spool
  /** Compresses plain docker-save layers on the way (--layer-compression); not with `ingest`. */
  layerCompression?: 'gzip' | 'zstd' | undefined
  /** Bytes of the source file read so far (compressed), for progress. */
  onRead?: (bytes: number) => void
  signal?: AbortSignal
}

/** Nested archives deeper than this are not opened (a zip bomb of tars must end somewhere). */
const maxDepth = 8
const blobPath = /^(?:(.*)\/)?blobs\/(sha256|sha512)\/([0-9a-f]+)$/
// How docker save (`<id>/layer.tar`), skopeo/podman (`<hex>.tar`) and go-containerregistry
// (`<hex>.tar.gz`) name layer files. Inside an archive its paths are the format: a file named
// like a layer is a layer, any other file whose bytes are an archive is a nested bundle.
const layerPath = /(^|\/)([0-9a-f]{64}\/layer\.tar|[0-9a-f]{64}\.tar(\.gz)?)$/

export class Collector {
  readonly content: BundleContent = {
    blobs: new Map(),
    documents: new Map(),
    scopes: [],
    compressedLayers: new Map(),
    broken: [],
  }
  readonly #options: CollectorOptions
  readonly #scopes = new Map<string, Scope>()
  readonly #uploads: Array<Promise<void>> = []
  /** The data parts of split packages found in a folder: read through their first part, not one by one. */
  readonly #splitParts = new Set<string>()

  constructor(options: CollectorOptions) {
    this.#options = options
  }

  /** Reads `source` (a bundle file or folder, or a stream) to the end. Throws only when the source cannot be read at all. */
  async read(source: string | StreamSource): Promise<void> {
    if (typeof source !== 'string') return this.#readSource(source.stream, source.label)
    const path = source
    const stats = await stat(path)
    if (stats.isDirectory()) {
      await this.#readEntries(folderEntries(path), this.#archive(path), 0)
      return
    }
    const { onRead, signal } = this.#options
    const split = await splitPackageOf(path)
    if (split?.problem !== undefined) throw new Error(split.problem)
    if (split !== undefined) {
      await this.#readSource(readSplitPackage(split, { ...(onRead ? { onRead } : {}), ...(signal ? { signal } : {}) }), split.first)
      return
    }
    // A pipe or device cannot be read by position, nor its head twice.
    if (this.#options.stage !== undefined && stats.isFile() && (await isPlainTar(path))) {
      // Read by position: blobs are uploaded straight from the file, never copied to the spool.
      await this.#readEntries(this.#counted(tarFileEntries(path)), this.#archive(path), 0)
      return
    }
    async function* counted(): AsyncGenerator<Buffer> {
      let read = 0
      for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
        // Checked per chunk: one blob of a bundle may take minutes to pass.
        signal?.throwIfAborted()
        read += (chunk as Buffer).length
        onRead?.(read)
        yield chunk as Buffer
      }
    }
    await this.#readSource(Readable.from(counted()), path)
  }

  /** Entries of a tar file read by position, the position reported as the bytes read. */
  async *#counted(entries: AsyncIterable<Entry>): AsyncGenerator<Entry> {
    for await (const entry of entries) {
      if (entry.range !== undefined) this.#options.onRead?.(entry.range.end)
      yield entry
    }
  }

  async #readSource(stream: Readable, label: string): Promise<void> {
    try {
      await this.#readStream(stream, label, 0)
    } catch (err) {
      const message = (err as Error).message
      throw message.includes(label) ? err : new Error(`${label}: ${message}`, { cause: err })
    }
  }

  #archive(label: string): ArchiveFiles {
    return { label, paths: new Map(), links: new Map() }
  }

  #scope(archive: ArchiveFiles, prefix: string): Scope {
    const key = `${archive.label}\n${prefix}`
    let scope = this.#scopes.get(key)
    if (scope === undefined) {
      scope = { archive, prefix }
      this.#scopes.set(key, scope)
      this.content.scopes.push(scope)
    }
    return scope
  }

  async #readStream(stream: Readable, label: string, depth: number): Promise<void> {
    const { head, stream: whole } = await peek(stream, sniffLength)
    const kind = sniff(head)
    if (isCompression(kind)) return this.#readStream(decompress(kind, whole, label), label, depth)
    if (kind !== 'tar') {
      whole.destroy()
      throw new Error(`${label}: not a bundle (neither a tar archive nor gzip, zstd, xz or bzip2 data)`)
    }
    await this.#readEntries(tarEntries(whole), this.#archive(label), depth)
  }

  async #readEntries(entries: AsyncIterable<Entry>, archive: ArchiveFiles, depth: number): Promise<void> {
    for await (const entry of entries) {
      this.#options.signal?.throwIfAborted()
      if (entry.kind === 'symlink' && entry.linkname !== undefined) {
        const target = entry.linkname.startsWith('/')
          ? normalisePath(entry.linkname)
          : normalisePath(posix.join(posix.dirname(entry.path), entry.linkname))
        archive.links.set(entry.path, target)
        continue
      }
      if (entry.kind !== 'file' || (entry.file !== undefined && this.#splitParts.has(entry.file))) continue
      await this.#readFile(entry, archive, depth)
    }
  }

  async #readFile(entry: Entry, archive: ArchiveFiles, depth: number): Promise<void> {
    const origin = entry.file !== undefined && entry.range === undefined ? entry.file : `${archive.label}!/${entry.path}`
    const base = posix.basename(entry.path)
    const prefix = posix.dirname(entry.path) === '.' ? '' : posix.dirname(entry.path)
    const blob = blobPath.exec(entry.path)
    if (blob !== null) {
      this.#scope(archive, blob[1] ?? '').hasBlobs = true
      await this.#readBlob(entry, origin, `${blob[2]}:${blob[3]}`)
      return
    }
    if (entry.file !== undefined && entry.size <= 4096 && (await this.#readSplit(entry.file, origin, depth))) return
    if (base === 'index.json' || base === 'manifest.json' || base === 'hauler-index.json') {
      const bytes = await readSmall(entry, origin)
      const scope = this.#scope(archive, prefix)
      if (base === 'index.json') scope.indexJson = bytes
      else if (base === 'hauler-index.json') scope.haulerIndexJson = bytes
      else scope.dockerManifest = bytes
      return
    }
    if (layerPath.test(entry.path)) {
      const digest = await this.#readBlob(entry, origin, undefined)
      if (digest !== undefined) archive.paths.set(entry.path, digest)
      return
    }
    const { head, stream } = await peek(entry.read(), sniffLength)
    const kind = sniff(head)
    if (kind !== undefined) {
      if (depth >= maxDepth) throw new Error(`${origin}: archives nested more than ${maxDepth} deep`)
      try {
        await this.#readStream(stream, origin, depth + 1)
      } catch (err) {
        // The parent archive goes on: only what this one holds is lost.
        this.content.broken.push({ label: origin, error: (err as Error).message })
      }
      return
    }
    // docker save's image configs (`<hex>.json`), found by path from manifest.json.
    if (entry.size <= maxManifestBytes && head.subarray(0, 1).toString() === '{') {
      const bytes = await collect(stream)
      const digest = digestBytes(bytes)
      this.content.documents.set(digest, bytes)
      this.#remember({ digest, size: bytes.length, origin, open: () => Readable.from([bytes]) })
      archive.paths.set(entry.path, digest)
      return
    }
    stream.destroy()
  }

  /** A folder's split package (split-parts.ts), read whole through its first part; false when `file` is none. */
  async #readSplit(file: string, origin: string, depth: number): Promise<boolean> {
    const split = await splitPackageOf(file)
    if (split === undefined || split.first !== file) return false
    for (const part of split.parts) this.#splitParts.add(part)
    if (split.problem !== undefined) {
      this.content.broken.push({ label: origin, error: split.problem })
      return true
    }
    try {
      await this.#readStream(readSplitPackage(split, this.#options.signal ? { signal: this.#options.signal } : {}), origin, depth + 1)
    } catch (err) {
      this.content.broken.push({ label: origin, error: (err as Error).message })
    }
    return true
  }

  /**
   * Files a blob: small JSON documents into memory, everything else through the spool to the
   * staging repository. Returns its digest, or undefined when its bytes do not match `expected`.
   */
  async #readBlob(entry: Entry, origin: string, expected: string | undefined): Promise<Digest | undefined> {
    const expectedDigest = expected === undefined ? undefined : tryParseDigest(expected)
    if (expected !== undefined && expectedDigest === undefined) return undefined
    const known = expectedDigest && this.content.blobs.get(expectedDigest)
    if (known && known.problem === undefined) return expectedDigest
    const { head, stream } = await peek(entry.read(), sniffLength)
    const compression = sniff(head)
    if (entry.size <= maxManifestBytes && head.subarray(0, 1).toString() === '{') {
      const bytes = await collect(stream)
      const digest = digestBytes(bytes)
      if (!this.#matches(expectedDigest, digest, origin, bytes.length)) return undefined
      this.content.documents.set(digest, bytes)
      this.#remember({ digest, size: bytes.length, origin, open: () => Readable.from([bytes]) })
      return digest
    }
    const record: BlobRecord = { digest: expectedDigest ?? ('' as Digest), size: entry.size, origin }
    if (compression === 'tar' || isCompression(compression)) record.compression = compression === 'tar' ? undefined : compression
    const { layerCompression } = this.#options
    if (
      expectedDigest === undefined &&
      !isCompression(compression) &&
      layerCompression !== undefined &&
      this.#options.ingest === undefined
    ) {
      return this.#readCompressed(entry, stream, record, layerCompression)
    }
    if (entry.file !== undefined) {
      // A folder's file is read when it is uploaded, and verified then; a layer named by path needs its digest now.
      if (expectedDigest === undefined) record.digest = (await digestOf(stream)).digest
      else stream.destroy()
      const digest = record.digest
      record.open = () => verified(() => reopenEntry(entry), digest, record.size)
      this.#remember(record)
      return record.digest
    }
    const ingest = this.#options.ingest
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
    this.content.compressedLayers.set(plain, record.digest)
    return plain
  }

  /** Uploads a spooled blob (unless it is uploading, or staged already), filing it as `record`; the spool file goes once uploaded. */
  async #stageSpooled(stage: Stage, spooled: SpooledBlob, record: BlobRecord): Promise<void> {
    record.digest = spooled.digest
    record.size = spooled.size
    const previous = this.content.blobs.get(spooled.digest)
    if (previous?.staged !== undefined || previous?.open !== undefined) return spooled.release()
    if ((await this.#options.isStaged?.(spooled.digest)) === true) {
      await spooled.release()
      record.staged = Promise.resolve()
      this.#remember(record)
      return
    }
    record.staged = this.#track(
      stage({ digest: spooled.digest, size: spooled.size, origin: record.origin, open: spooled.open }).finally(() => spooled.release()),
    )
    this.#remember(record)
  }

  /**
   * A blob whose digest the bundle names: its upload starts at once and reads the spool file as
   * it is written (spool.ts `tee`), so reading and uploading overlap, for several blobs at a time.
   */
  async #tee(stage: Stage, stream: AsyncIterable<Buffer>, record: BlobRecord, digest: Digest): Promise<Digest | undefined> {
    const { open, spooled } = this.#options.spool.tee(stream, record.size, digest)
    const staging = stage({ digest, size: record.size, origin: record.origin, open }).finally(async () => {
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
    if (!this.content.blobs.has(expected)) {
      this.content.blobs.set(expected, {
        digest: expected,
        size,
        origin,
        problem: `${origin}: content does not match its digest (${size} bytes hash to ${actual})`,
      })
    }
    return false
  }

  #remember(record: BlobRecord): void {
    const previous = this.content.blobs.get(record.digest)
    if (previous === undefined || previous.problem !== undefined) this.content.blobs.set(record.digest, record)
  }
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function readSmall(entry: Entry, origin: string): Promise<Buffer> {
  if (entry.size > maxManifestBytes) throw new Error(`${origin}: ${entry.size} bytes is too large for a bundle's ${posix.basename(origin)}`)
  return collect(entry.read())
}
