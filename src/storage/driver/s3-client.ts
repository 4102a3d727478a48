// The S3 client and the settings every write carries, built once per driver from its options.
// Credentials come from the options or, when absent, from the SDK's default chain (environment,
// shared files, web identity, instance metadata): the SDK reads those itself.
import { readFile } from 'node:fs/promises'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Socket } from 'node:net'
import { rootCertificates } from 'node:tls'
import { S3Client, S3ServiceException, type StorageClass } from '@aws-sdk/client-s3'
import type { S3Settings } from '../../core/s3-settings.js'
import { queueRequests } from './s3-request-slots.js'
import { Slots } from './slots.js'

/** How to reach the bucket (core/s3-settings.ts, what `storage.s3` decodes to), and what only the driver is told. */
export interface S3DriverOptions extends S3Settings {
  /**
   * Whether the store honours If-None-Match: * on writes; undefined detects it at start-up
   * (S3Driver.create). Stores that ignore the header (s3rver) would silently replace objects.
   */
  conditionalWrites?: boolean | undefined
  /** Milliseconds a request may go without socket activity before it is retried; default 60 s. */
  idleTimeoutMs?: number | undefined
  /**
   * Milliseconds the store may take to accept a connection before the attempt fails and is
   * retried; default 10 s. Time a request waits for one of the `maxSockets` sockets is not counted.
   */
  connectTimeoutMs?: number | undefined
  /**
   * Whether blob reads on a plain-HTTP endpoint may use connections of the driver's own
   * (s3-socket-get.ts), whose sockets the blob sender can splice to the client's.
   */
  socketReads?: boolean | undefined
  /** V8's GCs for the memory of parts (s3-upload.ts); none if undefined. */
  partMemory?: PartMemory | undefined
  /** Told the operation name (`PutObject`, `UploadPart`, ...) of every S3 request the driver sends. */
  onRequest?: ((operation: string) => void) | undefined
}

/** What the process does for the memory of parts (composition passes V8's GCs in); nothing by default. */
export interface PartMemory {
  /**
   * Told of each chunk of a write copied into a part: the request body's chunk is dead from then
   * on, and composition paces V8's young-generation GCs by these bytes (app/memory-reclaim.ts).
   */
  onCopied?: ((bytes: number) => void) | undefined
  /** Frees what dropped spare buffers held (a full GC, then the C heap trimmed): run as they are dropped. */
  reclaim?: (() => void) | undefined
  /** Milliseconds spare buffers are kept; `spareMs` by default. */
  keepSparesMs?: number | undefined
}

/** Headers of every object write (PutObject, CreateMultipartUpload, CopyObject). */
export interface WriteSettings {
  /** Any class the store knows (AWS, or e.g. R2's); the store rejects one it does not. */
  StorageClass?: StorageClass
  ServerSideEncryption?: 'AES256' | 'aws:kms'
  SSEKMSKeyId?: string
}

export async function createS3Client(options: S3DriverOptions): Promise<S3Client> {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets }
  const ca = options.caPath === undefined ? undefined : [...rootCertificates, await readFile(options.caPath, 'utf8')]
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000
  const client = new S3Client({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    forcePathStyle: options.forcePathStyle,
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    requestChecksumCalculation: options.requestChecksumCalculation,
    requestHandler: {
      // Not the SDK's connectionTimeout: its clock starts when a request is sent, so requests queued
      // behind busy sockets (500 existence checks of one manifest) failed as connection timeouts.
      httpAgent: limitConnectTime(new HttpAgent(agentOptions), connectTimeoutMs),
      httpsAgent: limitConnectTime(new HttpsAgent(ca === undefined ? agentOptions : { ...agentOptions, ca }), connectTimeoutMs),
      // A request whose socket is idle this long (a stalled part) fails and is retried.
      socketTimeout: options.idleTimeoutMs ?? 60_000,
    },
  })
  // At most maxSockets requests reach the agent at once; the rest wait without a timeout running.
  queueRequests(client, new Slots(options.maxSockets))
  const onRequest = options.onRequest
  if (onRequest !== undefined) countRequests(client, onRequest)
  return client
}

/**
 * Fails a new connection the store has not accepted within `ms` (ETIMEDOUT, which the SDK
 * retries). The clock starts when the agent opens the socket, not while a request waits for one.
 */
function limitConnectTime<A extends HttpAgent>(agent: A, ms: number): A {
  const create = agent.createConnection.bind(agent)
  agent.createConnection = ((...args: Parameters<typeof create>) => {
    const socket = create(...args)
    if (socket instanceof Socket && socket.connecting) {
      const timer = setTimeout(() => {
        socket.destroy(Object.assign(new Error(`the S3 store accepted no connection within ${ms} ms`), { code: 'ETIMEDOUT' }))
      }, ms)
      const clear = (): void => clearTimeout(timer)
      socket.once('connect', clear).once('close', clear)
    }
    return socket
  }) as A['createConnection']
  return agent
}

/** Calls `onRequest` with the operation of every request sent, retries included. */
export function countRequests(client: S3Client, onRequest: (operation: string) => void): void {
  client.middlewareStack.add(
    (next, context) => (args) => {
      onRequest(String(context.commandName).replace(/Command$/, ''))
      return next(args)
    },
    // After the retry step: each attempt is a request the store sees (and may bill).
    { step: 'finalizeRequest', name: 'ferryRequestCounter', priority: 'low' },
  )
}

export function writeSettings(options: S3DriverOptions): WriteSettings {
  const settings: WriteSettings = {}
  if (options.storageClass !== undefined) settings.StorageClass = options.storageClass as StorageClass
  if (options.sse !== undefined) {
    settings.ServerSideEncryption = options.sse.type
    if (options.sse.type === 'aws:kms' && options.sse.kmsKeyId !== undefined) settings.SSEKMSKeyId = options.sse.kmsKeyId
  }
  return settings
}

function status(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined
}

/** NoSuchKey on GET, NotFound on HEAD (no body to name it). */
export function isMissing(err: unknown): boolean {
  return status(err) === 404 || (err instanceof Error && (err.name === 'NoSuchKey' || err.name === 'NotFound'))
}

/** A conditional write whose condition failed (412), or a conflicting one in progress (409). */
export function isPreconditionFailed(err: unknown): boolean {
  const code = status(err)
  return (
    code === 412 ||
    code === 409 ||
    (err instanceof Error && (err.name === 'PreconditionFailed' || err.name === 'ConditionalRequestConflict'))
  )
}

/** 501, or NotImplemented: the store lacks the operation (s3rver's ListMultipartUploads). */
export function isNotImplemented(err: unknown): boolean {
  return status(err) === 501 || (err instanceof Error && err.name === 'NotImplemented')
}

/** A range starting at or past the end of the object. */
export function isUnsatisfiableRange(err: unknown): boolean {
  return status(err) === 416 || (err instanceof Error && err.name === 'InvalidRange')
}

/** CopySource is "bucket/key", URL-encoded per component. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`
}
