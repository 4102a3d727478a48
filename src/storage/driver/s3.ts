// StorageDriver on S3 and S3-compatible stores (@aws-sdk/client-s3). A path is the key
// `<prefix>/<path>`; a "directory" is a key prefix and exists while some key has it.
//
//   stat        HeadObject; on a miss, ListObjectsV2 MaxKeys=1 under `<key>/` (is it a directory?),
//               unless the caller asks about a file only (every request path does: no LIST there)
//   read        one GetObject, ranged when a range is asked (an append file: see s3-append.ts);
//               readWhole: the same unranged GetObject, whose headers also give the size
//   writer      a new file: PutObject, or a multipart upload of equal parts (≥ 16 MiB, larger
//               for a large known size) with a few in flight per file and a process-wide budget
//               (s3-upload.ts), visible only once commit() publishes it; cancel() aborts.
//               append: the next segment of an append file (s3-append.ts), never a rewrite.
//   getContent  GetObject; putContent: PutObject (atomic: readers see old or new, never a mix)
//   move        S3 has no rename. A plain object, or an append file of one segment, is copied
//               server-side (CopyObject, up to 5 GiB) and the source deleted; anything else is
//               streamed into a new multipart upload at `to`. The interface forces this: upload
//               sessions append to `_uploads/<id>/data` and only learn the digest at the end.
//   delete      HeadObject then DeleteObject(s) for a file (an append file with its segments); a
//               directory (unless the caller deletes a file only) is listed and deleted in
//               batches (DeleteObjects)
//   list        ListObjectsV2 with Delimiter '/'
//   downloadUrl a presigned GetObject URL (s3-presign.ts), for blob redirects
//
// Unlike a filesystem, S3 lets `a` and `a/b` both exist; checking for that would cost a LIST and
// a HEAD per ancestor on every write, so this driver does not (storage/paths.ts never builds such
// pairs). Only files move: the storage layer never moves a directory.
import { Readable, addAbortSignal } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  CopyObjectCommand,
  HeadBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type GetObjectCommandOutput,
  type HeadObjectCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3'
import { assertCleanPath, PathNotFoundError } from './driver.js'
import type { FileInfo, FileWriter, ReadOptions, StatOptions, StorageDriver, WriteOptions } from './driver.js'
import { readRange } from './read-range.js'
import { exactRange } from './s3-range.js'
import { appendSize, fetchIndex, isIndex, parseIndex, reservedName, segmentBytes, segmentKey, segmentKeys } from './s3-append.js'
import {
  copySource,
  createS3Client,
  isMissing,
  isPreconditionFailed,
  isUnsatisfiableRange,
  writeSettings,
  type S3DriverOptions,
  type WriteSettings,
} from './s3-client.js'
import { abortStaleUploads, probeConditionalWrites } from './s3-housekeeping.js'
import { deleteKeys, keysUnder, listPages } from './s3-keys.js'
import { defaultPartBudget, PartBudget } from './s3-upload.js'
import { presignGet } from './s3-presign.js'
import { SocketReads } from './s3-socket-get.js'
import { S3AppendWriter, S3ObjectWriter } from './s3-writer.js'

/** CopyObject's limit; larger sources are streamed instead. */
const maxCopySize = 5 * 1024 * 1024 * 1024

export class S3Driver implements StorageDriver {
  readonly name = 's3'
  // An upload session's bytes would have to be copied to the content address: write there directly.
  readonly directWrites = true
  readonly costlyLists = true
  /** Parts uploading at once over every writer of this driver. */
  readonly partBudget: PartBudget
  /** Whether writes with `ifAbsent` are conditional (If-None-Match: *); see create(). */
  readonly conditionalWrites: boolean
  readonly #bucket: string
  readonly #prefix: string
  readonly #settings: WriteSettings
  /** Reads on connections of the driver's own (plain-HTTP endpoints with socketReads), else undefined. */
  readonly #socketReads: SocketReads | undefined

  constructor(
    private readonly client: S3Client,
    options: S3DriverOptions,
    partBudget = new PartBudget(defaultPartBudget, options.partMemory),
  ) {
    this.#bucket = options.bucket
    this.#prefix = options.prefix
    this.#settings = writeSettings(options)
    this.partBudget = partBudget
    this.conditionalWrites = options.conditionalWrites ?? false
    this.#socketReads = SocketReads.for(client, options)
  }

  /** A driver for `options`; unless they say, probes whether the store honours conditional writes. */
  static async create(options: S3DriverOptions): Promise<S3Driver> {
    const client = await createS3Client(options)
    const conditionalWrites = options.conditionalWrites ?? (await probeConditionalWrites(client, options))
    return new S3Driver(client, { ...options, conditionalWrites })
  }

  downloadUrl(path: string, expiresInSeconds: number): Promise<string> {
    this.#check(path)
    return presignGet(this.client, this.#bucket, this.#key(path), expiresInSeconds)
  }

  async getVersioned(path: string): Promise<{ content: Buffer; version: string } | undefined> {
    this.#check(path)
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }))
      const content = Buffer.from((await response.Body?.transformToByteArray()) ?? [])
      return { content, version: response.ETag ?? '' }
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
  }

  /** Without conditional writes the store cannot compare: the write is unconditional (see create()). */
  async putIfVersion(path: string, content: string, version: string | undefined): Promise<boolean> {
    this.#check(path)
    const condition = !this.conditionalWrites ? {} : version === undefined ? { IfNoneMatch: '*' } : { IfMatch: version }
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(path), Body: content, ...condition, ...this.#settings }),
      )
      return true
    } catch (err) {
      if (this.conditionalWrites && isPreconditionFailed(err)) return false
      throw err
    }
  }

  /**
   * The janitor's ListMultipartUploads, the only place it is used. A store without it (s3rver
   * answers with an object listing) gives undefined: its lifecycle rules must do this instead.
   */
  abortStaleUploads(olderThan: Date): Promise<number | undefined> {
    return abortStaleUploads(this.client, this.#bucket, this.#dirPrefix(''), olderThan)
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.#bucket }))
  }

  async stat(path: string, options?: StatOptions): Promise<FileInfo | undefined> {
    this.#check(path)
    const head = await this.#head(this.#key(path))
    if (head !== undefined) {
      const size = isIndex(head.Metadata) ? Number(head.Metadata?.[appendSize]) : (head.ContentLength ?? 0)
      return { path, size, modTime: head.LastModified ?? new Date(), isDirectory: false }
    }
    if (options?.fileOnly) return undefined
    const listed = await this.client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#dirPrefix(path), MaxKeys: 1 }))
    const first = listed.Contents?.[0]
    return first === undefined ? undefined : { path, size: 0, modTime: first.LastModified ?? new Date(), isDirectory: true }
  }

  async read(path: string, options?: ReadOptions): Promise<Readable> {
    this.#check(path)
    const range = readRange(options)
    const signal = options?.signal
    signal?.throwIfAborted()
    const key = this.#key(path)
    if (range.empty) {
      if ((await this.stat(path, { fileOnly: true })) === undefined) throw new PathNotFoundError(path)
      return Readable.from([])
    }
    const own = await this.#socketReads?.read(key, range, signal)
    if (own === 'missing') throw new PathNotFoundError(path)
    if (own !== undefined) return own.stream
    let response: GetObjectCommandOutput
    try {
      response = await this.#get(key, range.start, range.end, signal)
    } catch (err) {
      if (isMissing(err)) throw new PathNotFoundError(path)
      if (!isUnsatisfiableRange(err)) throw err
      // Past the end of a plain object, or past the end of an append file's small index.
      const info = await this.stat(path, { fileOnly: true })
      if (info === undefined) throw new PathNotFoundError(path)
      if (range.start >= info.size) return Readable.from([])
      response = await this.#get(key, 0, undefined, signal)
    }
    return this.#body(key, response, range.start, range.end, signal)
  }

  async readWhole(path: string, options?: Pick<ReadOptions, 'signal'>): Promise<{ stream: Readable; size: number } | undefined> {
    this.#check(path)
    const signal = options?.signal
    signal?.throwIfAborted()
    const key = this.#key(path)
    const own = await this.#socketReads?.read(key, undefined, signal)
    if (own === 'missing') return undefined
    if (own !== undefined) return own
    let response: GetObjectCommandOutput
    try {
      response = await this.#get(key, 0, undefined, signal)
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
    const size = isIndex(response.Metadata) ? Number(response.Metadata?.[appendSize]) : (response.ContentLength ?? 0)
    return { stream: await this.#body(key, response, 0, undefined, signal), size }
  }

  /** Bytes `start`..`end` of `key` from its GetObject answer: the object's own, or an append file's segments. */
  async #body(
    key: string,
    response: GetObjectCommandOutput,
    start: number,
    end: number | undefined,
    signal?: AbortSignal,
  ): Promise<Readable> {
    let stream: Readable
    if (isIndex(response.Metadata)) {
      // An unranged answer is the whole index; a ranged one only part of it, so it is read again.
      const whole = start === 0 && end === undefined
      if (!whole) (response.Body as Readable | undefined)?.destroy()
      const segments = whole ? await parseIndex(response) : await fetchIndex(this.client, this.#bucket, key)
      stream = Readable.from(
        segmentBytes((part, from, to) => this.#get(part, from, to, signal), key, segments, start, end),
        { objectMode: false },
      )
    } else {
      stream = exactRange(response, start, end)
    }
    return signal === undefined ? stream : addAbortSignal(signal, stream)
  }

  async writer(path: string, options: WriteOptions = {}): Promise<FileWriter> {
    this.#check(path)
    options.signal?.throwIfAborted()
    const key = this.#key(path)
    const target = { client: this.client, bucket: this.#bucket, key, settings: this.#settings, budget: this.partBudget }
    if (!options.append) {
      const ifNoneMatch = options.ifAbsent === true && this.conditionalWrites
      return new S3ObjectWriter({ ...target, size: options.size, ifNoneMatch }, options.signal)
    }
    let response: GetObjectCommandOutput | undefined
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }))
    } catch (err) {
      if (!isMissing(err)) throw err
    }
    if (response === undefined) return new S3AppendWriter({ ...target, segments: [], exists: false }, options.signal)
    if (isIndex(response.Metadata))
      return new S3AppendWriter({ ...target, segments: await parseIndex(response), exists: true }, options.signal)
    ;(response.Body as Readable | undefined)?.destroy()
    // A plain file (an upload session starts as an empty one) becomes the first segment.
    const size = response.ContentLength ?? 0
    if (size > 0) await this.#copy(key, segmentKey(key, 1))
    return new S3AppendWriter({ ...target, segments: size > 0 ? [size] : [], exists: true }, options.signal)
  }

  async getContent(path: string): Promise<Buffer | undefined> {
    this.#check(path)
    const key = this.#key(path)
    let response: GetObjectCommandOutput
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key }))
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
    if (!isIndex(response.Metadata)) return Buffer.from((await response.Body?.transformToByteArray()) ?? [])
    const chunks: Buffer[] = []
    const get = (part: string, from: number, to: number) => this.#get(part, from, to, undefined)
    for await (const chunk of segmentBytes(get, key, await parseIndex(response), 0, undefined)) chunks.push(chunk)
    return Buffer.concat(chunks)
  }

  async putContent(path: string, content: Uint8Array | string): Promise<void> {
    this.#check(path)
    await this.client.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(path), Body: Buffer.from(content), ...this.#settings }),
    )
  }

  async move(from: string, to: string): Promise<void> {
    this.#check(from)
    this.#check(to)
    const source = this.#key(from)
    const head = await this.#head(source)
    if (head === undefined) throw new PathNotFoundError(from)
    if (from === to) return
    const target = this.#key(to)
    if (!isIndex(head.Metadata)) {
      if ((head.ContentLength ?? 0) <= maxCopySize) await this.#copy(source, target)
      else await this.#stream(from, target)
      await this.client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: source }))
      return
    }
    const segments = segmentKeys(source, head.Metadata)
    const size = Number(head.Metadata?.[appendSize])
    if (segments.length === 0) await this.putContent(to, '')
    else if (segments.length === 1 && size <= maxCopySize) await this.#copy(segments[0]!, target)
    else await this.#stream(from, target)
    await deleteKeys(this.client, this.#bucket, [source, ...segments])
  }

  async delete(path: string, options?: StatOptions): Promise<void> {
    this.#check(path)
    const key = this.#key(path)
    const head = await this.#head(key)
    if (head === undefined && options?.fileOnly) return
    if (head === undefined) return deleteKeys(this.client, this.#bucket, await keysUnder(this.client, this.#bucket, this.#dirPrefix(path)))
    await deleteKeys(this.client, this.#bucket, [key, ...(isIndex(head.Metadata) ? segmentKeys(key, head.Metadata) : [])])
  }

  /** Also accepts '' for the root. */
  async list(path: string): Promise<string[]> {
    if (path !== '') this.#check(path)
    const prefix = this.#dirPrefix(path)
    const names = new Set<string>()
    for await (const page of listPages(this.client, this.#bucket, prefix, '/')) {
      for (const { Prefix } of page.CommonPrefixes ?? []) if (Prefix !== undefined) names.add(Prefix.slice(prefix.length, -1))
      for (const { Key } of page.Contents ?? []) if (Key !== undefined) names.add(Key.slice(prefix.length))
    }
    names.delete(reservedName)
    names.delete('')
    return [...names].sort()
  }

  #key(path: string): string {
    return this.#prefix === '' ? path : `${this.#prefix}/${path}`
  }

  /** The key prefix of the directory at `path` ('' is the root). */
  #dirPrefix(path: string): string {
    if (path === '') return this.#prefix === '' ? '' : `${this.#prefix}/`
    return `${this.#key(path)}/`
  }

  #check(path: string): void {
    assertCleanPath(path)
    if (path.split('/').includes(reservedName)) throw new Error(`invalid storage path: ${JSON.stringify(path)} (reserved name)`)
  }

  async #head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: key }))
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
  }

  #get(key: string, start: number, end: number | undefined, signal: AbortSignal | undefined): Promise<GetObjectCommandOutput> {
    // No Range for the whole object: some stores answer `bytes=0-` on an empty object with 416.
    const range = start === 0 && end === undefined ? undefined : `bytes=${start}-${end ?? ''}`
    return this.client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: key, Range: range }), { abortSignal: signal })
  }

  async #copy(source: string, target: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({ Bucket: this.#bucket, Key: target, CopySource: copySource(this.#bucket, source), ...this.#settings }),
    )
  }

  /** Re-uploads the file at `from` to `target` as a new object: equal parts, memory flat. */
  async #stream(from: string, target: string): Promise<void> {
    const size = (await this.stat(from, { fileOnly: true }))?.size
    const writer = new S3ObjectWriter(
      { client: this.client, bucket: this.#bucket, key: target, settings: this.#settings, budget: this.partBudget, size },
      undefined,
    )
    try {
      await pipeline(await this.read(from), writer.stream)
      await writer.commit()
    } catch (err) {
      await writer.cancel()
      throw err
    }
  }
}
