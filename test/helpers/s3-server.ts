// An S3-compatible server for tests: s3rver in-process on 127.0.0.1, on an ephemeral port and a
// temp folder, with one bucket. s3rver checks no signatures (any key works), and stores
// aws-chunked bodies with their framing unless the client sends WHEN_REQUIRED checksums.
//
// Three s3rver 3.7.1 bugs are corrected here, as S3, MinIO and Ceph behave and the driver relies on:
// - with a delimiter, its listing never descends more than one folder below the prefix, so a
//   common prefix holding only deeper keys (`r/m/` for `r/m/n/o`) is missing: the helper lists
//   without the delimiter through s3rver's own store and groups the keys as S3 does;
// - it writes an object in place, answering the PUT before the write has finished, so a GET
//   right after, or during an overwrite of the same key (two replicas committing one blob without
//   conditional writes), reads a short or mixed object, where S3 replaces objects atomically: the
//   helper writes to a temporary file, renames it into place, then answers;
// - a DELETE that races another under the same folder fails with a 500 (S3 deletes are idempotent);
// - a listing walks the folders with readdir then stat, and fails with a 500 when a concurrent
//   DELETE removes a file or prunes a folder in between (S3 lists while keys come and go): the
//   helper walks again;
// - it writes an object's metadata file in place, so a HEAD, GET or listing that reads it during
//   an overwrite parses half a JSON document and fails with a 500: the helper renames it into place.
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { IncomingMessage, Server } from 'node:http'
import S3rver from 's3rver'
import type { S3DriverOptions } from '../../src/storage/driver/s3-client.js'

// Test processes on S3 print no AWS SDK NodeVersionSupportWarning, as Ferry's own process does
// not (src/cli/io.ts quietSdkNodeWarning): CI logs show the warnings that matter.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

export interface S3TestServer {
  endpoint: string
  bucket: string
  /** Every request the server received, as S3 operation names (`PutObject`, `UploadPart`, ...). */
  readonly requests: string[]
  /** Driver options for this server (a fresh key prefix per call keeps tests apart). */
  driverOptions(prefix?: string): S3DriverOptions
  close(): Promise<void>
  /** Lets the process exit while the server still listens (a server shared by a whole test file). */
  unref(): void
  /** Deletes the server's folder at once, for a process that is exiting. */
  removeSync(): void
}

export async function startS3Server(bucket = 'ferry-test'): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-s3rver-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] })
  groupCommonPrefixes(server)
  atomicWrites(server, `${directory}-partial`)
  atomicMetadata(server, `${directory}-partial`)
  idempotentDeletes(server)
  const { port } = await server.run()
  const requests: string[] = []
  const { httpServer } = server as unknown as { httpServer: Server }
  httpServer.prependListener('request', (req: IncomingMessage) => {
    requests.push(operationOf(req))
  })
  const endpoint = `http://127.0.0.1:${port}`
  return {
    endpoint,
    bucket,
    requests,
    driverOptions: (prefix = '') => ({
      bucket,
      prefix,
      region: 'us-east-1',
      endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      storageClass: undefined,
      sse: undefined,
      caPath: undefined,
      maxSockets: 16,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    }),
    close: async () => {
      await server.close()
      await rm(directory, { recursive: true, force: true })
      await rm(`${directory}-partial`, { recursive: true, force: true })
    },
    unref: () => void httpServer.unref(),
    removeSync: () => {
      rmSync(directory, { recursive: true, force: true })
      rmSync(`${directory}-partial`, { recursive: true, force: true })
    },
  }
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
const keptMetadata = new Set(
  (createRequire(import.meta.url)('s3rver/lib/models/object.js') as { ALLOWED_METADATA: string[] }).ALLOWED_METADATA,
)

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

function groupCommonPrefixes(server: S3rver): void {
  const store = storeOf(server)
  const walk = store.listObjects.bind(store)
  const listObjects = async (bucket: string, options: ListOptions): Promise<ListResult> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await walk(bucket, options)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 20) throw err
      }
    }
  }
  store.listObjects = async (bucket, options) => {
    const { delimiter = '', prefix = '' } = options
    if (delimiter === '') return listObjects(bucket, options)
    const all = await listObjects(bucket, { ...options, delimiter: '', maxKeys: Infinity })
    const commonPrefixes = new Set<string>()
    const objects = all.objects.filter(({ key }) => {
      const at = key.indexOf(delimiter, prefix.length)
      if (at !== -1) commonPrefixes.add(key.slice(0, at + delimiter.length))
      return at === -1
    })
    return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated: false }
  }
}

/** The S3 operation of a request, from its method, query and copy-source header. */
export function operationOf(req: IncomingMessage): string {
  const query = new URL(req.url ?? '/', 'http://s3').searchParams
  const copy = req.headers['x-amz-copy-source'] !== undefined
  switch (req.method) {
    case 'HEAD':
      return 'HeadObject'
    case 'GET':
      return query.has('list-type') || query.has('prefix') || query.has('delimiter') ? 'ListObjects' : 'GetObject'
    case 'PUT':
      if (query.has('uploadId')) return copy ? 'UploadPartCopy' : 'UploadPart'
      return copy ? 'CopyObject' : 'PutObject'
    case 'POST':
      if (query.has('uploads')) return 'CreateMultipartUpload'
      if (query.has('uploadId')) return 'CompleteMultipartUpload'
      return query.has('delete') ? 'DeleteObjects' : 'PostObject'
    case 'DELETE':
      return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject'
    default:
      return String(req.method)
  }
}
