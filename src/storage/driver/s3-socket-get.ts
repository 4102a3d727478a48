// GETs of an object on a plain-HTTP store (MinIO in a cluster, s3rver in tests) on a TCP
// connection of the driver's own rather than the SDK's: a presigned URL (s3-presign.ts), one
// request, the response head parsed here. What this buys is the body's socket: the blob sender
// can hand it to the kernel (transfer/send-file.ts, splice(2) from this socket to the client's),
// so a cached pull's bytes never pass through JavaScript. Read as a stream instead, the body
// costs no more than the SDK's (no HTTP parser per chunk).
//
// Only the simple case is taken: a 200 (or a 206 for a range) with a Content-Length and no
// transfer coding. Anything else, or a connection that fails before the head arrived, resolves
// undefined (404: missing), and the caller asks the SDK as before: nothing has reached a client yet.
// The connection serves one response (Connection: close); it is closed when the body ends or is
// destroyed. These connections are not pooled: one per blob download in flight, at most
// storage.s3.maxSockets of them (SocketReads counts them; past that, reads use the SDK's pool).
import { connect, type Socket } from 'node:net'
import { Readable, addAbortSignal } from 'node:stream'
import type { S3Client } from '@aws-sdk/client-s3'
import type { SocketSource } from '../../transfer/body-sources.js'
import { appendMarker } from './s3-append.js'
import type { S3DriverOptions } from './s3-client.js'
import { presignGet } from './s3-presign.js'

/** What the head of a response may take, at most. */
const maxHeadBytes = 64 * 1024

export interface SocketResponse {
  status: number
  /** Lower-case names; repeated headers joined by ", ". */
  headers: Map<string, string>
  /** The body, when the response has one this module reads (see the header). */
  body: SocketBody | undefined
}

export interface SocketGetOptions {
  /** Bytes `start`..`end` (inclusive), as a Range header. */
  range?: { start: number; end: number | undefined } | undefined
  connectTimeoutMs: number
  /** Without socket activity this long, the GET (or the body) fails. */
  idleTimeoutMs: number
  signal?: AbortSignal | undefined
}

/** Where socketRead() reads from, and the driver's settings for it. */
export interface SocketReadTarget {
  client: S3Client
  bucket: string
  key: string
  connectTimeoutMs: number
  idleTimeoutMs: number
  onRequest?: ((operation: string) => void) | undefined
}

/** How long a presigned URL of one GET is valid: it is used at once. */
const presignSeconds = 300

/**
 * Bytes `range` (or the whole object) of a plain object, read on a connection of its own: the
 * body with the object's size, 'missing' on a 404, or undefined when the SDK should answer
 * instead (a failure before the head, an append file, a store that ignored the range, anything
 * unexpected); nothing has been read from the object then.
 */
export async function socketRead(
  target: SocketReadTarget,
  range: { start: number; end: number | undefined } | undefined,
  signal: AbortSignal | undefined,
): Promise<{ body: SocketBody; size: number } | 'missing' | undefined> {
  let response: SocketResponse
  try {
    const url = new URL(await presignGet(target.client, target.bucket, target.key, presignSeconds))
    target.onRequest?.('GetObject')
    response = await socketGet(url, { range, connectTimeoutMs: target.connectTimeoutMs, idleTimeoutMs: target.idleTimeoutMs, signal })
  } catch {
    signal?.throwIfAborted()
    return undefined
  }
  if (response.status === 404) {
    response.body?.destroy()
    return 'missing'
  }
  const body = response.body
  const length = Number(response.headers.get('content-length'))
  let size: number | undefined
  if (range === undefined) {
    size = response.status === 200 ? length : undefined
  } else {
    const answered = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers.get('content-range') ?? '')
    const total = Number(answered?.[3])
    const exact =
      response.status === 206 &&
      answered !== null &&
      Number(answered[1]) === range.start &&
      Number(answered[2]) === Math.min(range.end ?? total - 1, total - 1) &&
      Number(answered[2]) - Number(answered[1]) + 1 === length
    size = exact ? total : undefined
  }
  if (body === undefined || size === undefined || response.headers.has(`x-amz-meta-${appendMarker}`)) {
    body?.destroy()
    return undefined
  }
  return { body, size }
}

/**
 * A driver's reads on connections of its own: at most `maxSockets` open at once (each released
 * when its body closes: its end, failure or destroy()), past which read() answers undefined and
 * the SDK's pool reads.
 */
export class SocketReads {
  #open = 0

  private constructor(
    private readonly target: Omit<SocketReadTarget, 'key'>,
    private readonly max: number,
  ) {}

  /** Reads for a plain-HTTP endpoint with `socketReads` on; undefined otherwise. */
  static for(client: S3Client, options: S3DriverOptions): SocketReads | undefined {
    if (options.socketReads !== true || options.endpoint?.startsWith('http:') !== true) return undefined
    const target = {
      client,
      bucket: options.bucket,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      onRequest: options.onRequest,
    }
    return new SocketReads(target, options.maxSockets)
  }

  /** `range` of `key` (the whole object when undefined or from 0 to the end); see socketRead(). */
  async read(
    key: string,
    range: { start: number; end: number | undefined } | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ stream: Readable; size: number } | 'missing' | undefined> {
    if (this.#open >= this.max) return undefined
    this.#open++
    const release = (): void => void this.#open--
    const whole = range === undefined || (range.start === 0 && range.end === undefined)
    let read: Awaited<ReturnType<typeof socketRead>>
    try {
      read = await socketRead({ ...this.target, key }, whole ? undefined : range, signal)
    } catch (err) {
      release()
      throw err
    }
    if (read === undefined || read === 'missing') {
      release()
      return read
    }
    read.body.once('close', release)
    return { stream: signal === undefined ? read.body : addAbortSignal(signal, read.body), size: read.size }
  }
}

/** Sends GET `url` on a new connection; resolves with the parsed head, or rejects when no head arrived. */
export function socketGet(url: URL, options: SocketGetOptions): Promise<SocketResponse> {
  return new Promise((resolve, reject) => {
    options.signal?.throwIfAborted()
    const port = Number(url.port) || 80
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port, noDelay: true })
    const connectTimer = setTimeout(
      () => fail(new Error(`the S3 store accepted no connection within ${options.connectTimeoutMs} ms`)),
      options.connectTimeoutMs,
    )
    const chunks: Buffer[] = []
    let received = 0
    const fail = (err: Error): void => {
      cleanUp()
      socket.destroy()
      reject(err)
    }
    const onAbort = (): void => fail(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'))
    const onTimeout = (): void => fail(new Error(`the S3 store sent no response head within ${options.idleTimeoutMs} ms`))
    const onClose = (): void => fail(new Error('the S3 store closed the connection before the response head'))
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      received += chunk.length
      const all = chunks.length === 1 ? chunk : Buffer.concat(chunks)
      const end = all.indexOf('\r\n\r\n', Math.max(0, received - chunk.length - 3))
      if (end < 0) {
        if (received > maxHeadBytes) fail(new Error('the S3 store sent a response head larger than 64 KiB'))
        return
      }
      // The head is complete: nothing more is read until the body's reader (or the kernel) wants it.
      holdReads(socket)
      cleanUp()
      const head = parseHead(all.subarray(0, end).toString('latin1'))
      if (head === undefined) {
        socket.destroy()
        return reject(new Error('the S3 store sent a malformed response head'))
      }
      const length = bodyLength(head.status, head.headers)
      const rest = all.subarray(end + 4)
      if (length === undefined || rest.length > length) {
        socket.destroy()
        return resolve({ ...head, body: undefined })
      }
      socket.setTimeout(options.idleTimeoutMs)
      resolve({ ...head, body: new SocketBody(socket, rest, length, options.idleTimeoutMs) })
    }
    function cleanUp(): void {
      clearTimeout(connectTimer)
      socket.setTimeout(0)
      socket.removeListener('data', onData)
      socket.removeListener('error', fail)
      socket.removeListener('close', onClose)
      socket.removeListener('timeout', onTimeout)
      options.signal?.removeEventListener('abort', onAbort)
    }
    socket.on('error', fail)
    socket.on('close', onClose)
    socket.on('timeout', onTimeout)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => {
      clearTimeout(connectTimer)
      socket.setTimeout(options.idleTimeoutMs)
      const range = options.range ? `range: bytes=${options.range.start}-${options.range.end ?? ''}\r\n` : ''
      socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n${range}connection: close\r\n\r\n`)
      socket.on('data', onData)
    })
  })
}

type ReadingSocket = Socket & { _handle?: { reading?: boolean; readStop?: () => number } | null; _read: (size: number) => void }

/**
 * Stops libuv reading the socket now, and until releaseReads(): pause() alone only stops the
 * 'data' events, and a stream asking for more (its read-ahead after a push) starts libuv again,
 * which reads into the socket's buffer bytes a kernel splice would then miss.
 */
function holdReads(socket: Socket): void {
  socket.pause()
  const own = socket as ReadingSocket
  own._read = () => undefined
  const handle = own._handle
  if (handle?.reading === true && handle.readStop !== undefined) {
    handle.reading = false
    handle.readStop()
  }
}

/** Lets the stream read the socket again (net.Socket's own _read), and starts it. */
function releaseReads(socket: Socket): void {
  const own = socket as Partial<ReadingSocket>
  delete own._read
  // A read the held stream asked for in vain would otherwise stay pending for ever.
  ;(socket as ReadingSocket)._read(socket.readableHighWaterMark)
}

function parseHead(text: string): Omit<SocketResponse, 'body'> | undefined {
  const lines = text.split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '')
  if (!status) return undefined
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) return undefined
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    const before = headers.get(name)
    headers.set(name, before === undefined ? value : `${before}, ${value}`)
  }
  return { status: Number(status[1]), headers }
}

/** The body's length when this module reads it: a 2xx with one plain Content-Length. */
function bodyLength(status: number, headers: Map<string, string>): number | undefined {
  if (status < 200 || status > 299 || headers.has('transfer-encoding')) return undefined
  const length = headers.get('content-length')
  return length !== undefined && /^\d{1,15}$/.test(length) ? Number(length) : undefined
}

/**
 * A response body read from its connection: `rest` (the bytes that came with the head), then the
 * socket's, up to `length`. Or, before its first read, the connection itself (takeSocket()).
 */
export class SocketBody extends Readable implements SocketSource {
  readonly stallMs: number
  readonly #socket: Socket
  #rest: Buffer | undefined
  #left: number
  #reading = false
  #taken = false

  constructor(socket: Socket, rest: Buffer, length: number, stallMs: number) {
    super()
    this.stallMs = stallMs
    this.#socket = socket
    this.#rest = rest
    this.#left = length - rest.length
    // Errors reach the reader through destroy(); after takeSocket() nobody reads, and the socket's
    // end is the kernel's business.
    socket.on('error', (err) => this.destroy(err))
    socket.on('timeout', () => socket.destroy(new Error('the S3 store sent nothing for too long mid-body')))
  }

  takeSocket<T>(open: (fd: number) => T | undefined): { taken: T; head: Buffer; length: number } | undefined {
    const fd = (this.#socket as Socket & { _handle?: { fd?: unknown } })._handle?.fd
    const ready = !this.#reading && !this.#taken && !this.destroyed && this.#left > 0 && this.#socket.readableLength === 0
    if (!ready || typeof fd !== 'number' || fd < 0) return undefined
    const taken = open(fd)
    if (taken === undefined) return undefined
    this.#taken = true
    // The kernel watches the connection now: Node's idle timer would see no reads and cut it.
    this.#socket.setTimeout(0)
    const head = this.#rest ?? Buffer.alloc(0)
    this.#rest = undefined
    return { taken, head, length: this.#left }
  }

  override _read(): void {
    if (!this.#reading) {
      this.#reading = true
      // The socket stays paused (flowing false) until resumed below: a listener does not start it.
      releaseReads(this.#socket)
      this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk))
      this.#socket.on('end', () => {
        if (this.#left > 0) this.destroy(new Error(`the S3 store closed the connection ${this.#left} bytes before the body's end`))
      })
      const rest = this.#rest
      this.#rest = undefined
      const more = rest === undefined || rest.length === 0 || this.push(rest)
      if (this.#left === 0) {
        this.push(null)
        this.#socket.destroy()
        return
      }
      if (!more) return
    }
    if (this.#left > 0) this.#socket.resume()
  }

  #onData(chunk: Buffer): void {
    if (this.destroyed) return
    const piece = chunk.length > this.#left ? chunk.subarray(0, this.#left) : chunk
    this.#left -= piece.length
    const more = this.push(piece)
    if (this.#left === 0) {
      this.push(null)
      this.#socket.destroy()
    } else if (!more) {
      this.#socket.pause()
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#socket.destroy()
    callback(err)
  }
}
