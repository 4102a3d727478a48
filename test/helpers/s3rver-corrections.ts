// s3rver 3.7.1's bugs, corrected in the server a test starts, as S3, MinIO and Ceph behave and
// Ferry's S3 driver relies on:
// - with a delimiter, its listing never descends more than one folder below the prefix, so a
//   common prefix holding only deeper keys (`r/m/` for `r/m/n/o`) is missing, and it pages in
//   the order its folder walk meets keys, not in key order: the listing takes every key under the
//   prefix through s3rver's own store, then groups and pages them as S3 does;
// - it writes an object in place, answering the PUT before the write has finished, so a GET
//   right after, or during an overwrite of the same key (two replicas committing one blob without
//   conditional writes), reads a short or mixed object, where S3 replaces objects atomically:
//   writes go to a temporary file, renamed into place before the answer;
// - a DELETE that races another under the same folder fails with a 500 (S3 deletes are idempotent);
// - a listing walks the folders with readdir then stat, and fails with a 500 when a concurrent
//   DELETE removes a file or prunes a folder in between (S3 lists while keys come and go): the
//   listing walks again;
// - it writes an object's metadata file in place, so a HEAD, GET or listing that reads it during
//   an overwrite parses half a JSON document and fails with a 500: it is renamed into place;
// - a ListObjectsV2 page that is not the last fails with a 500: its continuation token is
//   encrypted with DES, which OpenSSL 3 (Node 17+) no longer offers. A listing of `max-keys=1`
//   under a prefix holding two keys was enough. The token becomes the page's last key, encoded.
// And a 500 of its own (not an S3 error) is reported with its stack, which s3rver hides: on stderr,
// or appended to the file S3RVER_ERROR_LOG names (tap's terse reporter shows no stderr).
import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash, randomBytes } from 'node:crypto'
import { appendFileSync, createWriteStream } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type S3rver from 's3rver'

const require = createRequire(import.meta.url)

/** Corrects the bugs above in `server`; `partials` is a folder outside the bucket for writes in progress. */
export function correctS3rver(server: S3rver, partials: string): void {
  correctListings(server)
  atomicWrites(server, partials)
  atomicMetadata(server, partials)
  idempotentDeletes(server)
  reportInternalErrors(server)
}

interface ListOptions {
  delimiter?: string
  prefix?: string
  startAfter?: string
  maxKeys?: number
}
interface ListResult {
  objects: Array<{ key: string }>
  commonPrefixes: string[]
  isTruncated: boolean
}
interface StoreObject {
  bucket: string
  key: string
  content: Buffer | NodeJS.ReadableStream
  metadata: unknown
}
interface Store {
  listObjects(bucket: string, options: ListOptions): Promise<ListResult>
  putObject(object: StoreObject): Promise<{ size: number; md5: string }>
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>
  deleteObject(bucket: string, key: string): Promise<void>
  getResourcePath(bucket: string, key: string, resource: string): string
}

function storeOf(server: S3rver): Store {
  return (server as unknown as { store: Store }).store
}

/** Writes `keys` through the store (its corrected putObject), as PutObject would, each object holding its key. */
export async function seedObjects(server: S3rver, bucket: string, keys: string[]): Promise<void> {
  const store = storeOf(server)
  const metadata = { 'content-type': 'application/octet-stream' }
  for (let i = 0; i < keys.length; i += 64)
    await Promise.all(keys.slice(i, i + 64).map((key) => store.putObject({ bucket, key, content: Buffer.from(key), metadata })))
}

/**
 * Writes go to a temporary file outside the bucket's folders and are renamed into place. s3rver's
 * deletes remove folders they leave empty, so a folder made for a write can vanish before the
 * write lands in it: the rename makes it again and retries.
 */
function atomicWrites(server: S3rver, partials: string): void {
  const store = storeOf(server)
  // Multipart completion goes through putObject too.
  store.putObject = async (object) => {
    const file = store.getResourcePath(object.bucket, object.key, 'object')
    await mkdir(partials, { recursive: true })
    const temporary = join(partials, randomBytes(8).toString('hex'))
    const md5 = createHash('md5')
    let size = 0
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk)
        size += chunk.length
        done(null, chunk)
      },
    })
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content
    try {
      await pipeline(source, count, createWriteStream(temporary))
      for (let attempt = 1; ; attempt++) {
        await mkdir(dirname(file), { recursive: true })
        try {
          await rename(temporary, file)
          break
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 5) throw err
        }
      }
    } catch (err) {
      await rm(temporary, { force: true })
      throw err
    }
    const digest = md5.digest('hex')
    await store.putMetadata(object.bucket, object.key, object.metadata, digest)
    return { size, md5: digest }
  }
}

/** The metadata an object keeps (s3rver's own list), besides `x-amz-meta-*`. */
const keptMetadata = new Set((require('s3rver/lib/models/object.js') as { ALLOWED_METADATA: string[] }).ALLOWED_METADATA)

/** An object's md5 and metadata files, as s3rver writes them, but written aside and renamed into place. */
function atomicMetadata(server: S3rver, partials: string): void {
  const store = storeOf(server)
  const replace = async (file: string, content: string): Promise<void> => {
    await mkdir(partials, { recursive: true })
    const temporary = join(partials, randomBytes(8).toString('hex'))
    await writeFile(temporary, content)
    await rename(temporary, file)
  }
  store.putMetadata = async (bucket, key, metadata, md5) => {
    const kept = Object.entries(metadata as Record<string, unknown>).filter(
      ([name]) => keptMetadata.has(name) || name.startsWith('x-amz-meta-'),
    )
    if (md5) await replace(store.getResourcePath(bucket, key, 'object.md5'), md5)
    await replace(store.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(Object.fromEntries(kept), null, 2))
  }
}

/**
 * S3 answers a DELETE of a missing key with 204. s3rver then prunes the key's folders and fails
 * (500) when a concurrent delete removed one first (ENOENT) or a write just added a file (ENOTEMPTY).
 */
function idempotentDeletes(server: S3rver): void {
  const store = storeOf(server)
  const deleteObject = store.deleteObject.bind(store)
  store.deleteObject = async (bucket, key) => {
    try {
      await deleteObject(bucket, key)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw err
    }
  }
}

/** s3rver's own errors (NoSuchKey, ...) carry an S3 code; anything else is a 500 whose cause it hides. */
const s3Error = require('s3rver/lib/models/error.js') as abstract new (...args: never[]) => Error

/** Prints the stack of every 500 s3rver answers, so a failed test names its cause. */
function reportInternalErrors(server: S3rver): void {
  const app = server as unknown as NodeJS.EventEmitter
  app.on('error', (err: unknown, ctx?: { method?: string; url?: string }) => {
    if (err instanceof s3Error) return
    // A client that went away mid-answer (Ferry cancelling a read it no longer needs) got no 500.
    const { code, headerSent } = err as { code?: string; headerSent?: boolean }
    if (headerSent || code === 'ECONNRESET' || code === 'EPIPE') return
    const line = `s3rver: 500 for ${ctx?.method} ${ctx?.url}: ${err instanceof Error ? err.stack : String(err)}\n`
    if (process.env.S3RVER_ERROR_LOG) appendFileSync(process.env.S3RVER_ERROR_LOG, line)
    else process.stderr.write(line)
  })
}

/** A ListObjectsV2 page in the making: whether more entries follow, and the last one it holds. */
interface Page {
  truncated: boolean
  lastEntry: string
}
const pages = new AsyncLocalStorage<Page>()

interface BucketContext {
  query: Record<string, string | string[] | undefined>
  body: { ListBucketResult: Record<string, unknown> }
}
const bucketController = require('s3rver/lib/controllers/bucket.js') as { getBucket(ctx: BucketContext): Promise<void> }
const encryptedGetBucket = bucketController.getBucket

/**
 * ListObjectsV2 pages continue from a token that is the page's last entry (key or common prefix) in base64url. s3rver's
 * controller is one per process, so this applies to every server (and only changes truncated
 * pages and the requests that follow them).
 */
bucketController.getBucket = async (ctx) => {
  if (ctx.query['list-type'] !== '2') return encryptedGetBucket(ctx)
  const token = ctx.query['continuation-token']
  if (typeof token === 'string') {
    const { 'continuation-token': _token, ...rest } = ctx.query
    ctx.query = { ...rest, 'start-after': Buffer.from(token, 'base64url').toString() }
  }
  const page: Page = { truncated: false, lastEntry: '' }
  await pages.run(page, () => encryptedGetBucket(ctx))
  const result = ctx.body.ListBucketResult
  if (typeof token === 'string') Object.assign(result, { ContinuationToken: token, StartAfter: undefined })
  if (page.truncated) {
    Object.assign(result, { IsTruncated: true, NextContinuationToken: Buffer.from(page.lastEntry).toString('base64url') })
  }
}

/**
 * One page of a listing as S3 answers it: keys and common prefixes in key order, counted together
 * against `maxKeys`, after `startAfter`. s3rver pages in the order its folder walk meets keys, and
 * groups nothing below the first folder.
 */
function pageOf(keys: ListResult['objects'], options: ListOptions): ListResult & { lastEntry?: string } {
  const { delimiter = '', prefix = '', startAfter = '', maxKeys = 1000 } = options
  const entries = new Map<string, ListResult['objects'][number] | undefined>()
  for (const object of keys) {
    const at = delimiter === '' ? -1 : object.key.indexOf(delimiter, prefix.length)
    if (at === -1) entries.set(object.key, object)
    else entries.set(object.key.slice(0, at + delimiter.length), undefined)
  }
  const after = [...entries.keys()].filter((entry) => entry > startAfter).sort()
  const page = after.slice(0, maxKeys)
  return {
    objects: page.flatMap((entry) => entries.get(entry) ?? []),
    commonPrefixes: page.filter((entry) => entries.get(entry) === undefined),
    isTruncated: after.length > page.length,
    lastEntry: page.at(-1),
  }
}

function correctListings(server: S3rver): void {
  const store = storeOf(server)
  const walk = store.listObjects.bind(store)
  const everyKey = async (bucket: string, prefix: string | undefined): Promise<ListResult['objects']> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await walk(bucket, { prefix, maxKeys: Infinity })).objects
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw err
      }
    }
  }
  store.listObjects = async (bucket, options) => {
    const { lastEntry, ...result } = pageOf(await everyKey(bucket, options.prefix), options)
    const page = pages.getStore()
    // A ListObjectsV2 page: s3rver must not see it truncated, or it mints its DES token.
    if (page === undefined || !result.isTruncated || lastEntry === undefined) return result
    page.truncated = true
    page.lastEntry = lastEntry
    return { ...result, isTruncated: false }
  }
}
