// An S3-compatible server for tests: s3rver in-process on 127.0.0.1, on an ephemeral port and a
// temp folder, with one bucket. s3rver checks no signatures (any key works), and stores
// aws-chunked bodies with their framing unless the client sends WHEN_REQUIRED checksums.
// s3rver 3.7.1's bugs are corrected (./s3rver-corrections.ts) as S3, MinIO and Ceph behave.
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IncomingMessage, Server } from 'node:http'
import S3rver from 's3rver'
import { correctS3rver, seedObjects } from './s3rver-corrections.js'
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
  /** Stores objects (each holding its key) straight through s3rver's store: a thousand keys in a blink, not in seconds. */
  seed(keys: string[]): Promise<void>
}

export async function startS3Server(bucket = 'ferry-test'): Promise<S3TestServer> {
  const directory = await mkdtemp(join(tmpdir(), 'ferry-s3rver-'))
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true, configureBuckets: [{ name: bucket }] })
  correctS3rver(server, `${directory}-partial`)
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
    seed: (keys) => seedObjects(server, bucket, keys),
    removeSync: () => {
      rmSync(directory, { recursive: true, force: true })
      rmSync(`${directory}-partial`, { recursive: true, force: true })
    },
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
