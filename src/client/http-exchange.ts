// One HTTP request/response over an undici Agent, with undici's errors and types kept inside
// this file: callers see a ClientResponse and ClientErrors.
import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import { ClientError, toClientError } from './client-error.js'
import { watchLentStall, watchSendStall } from './stall-watch.js'
import { Transport, type ClientTimeouts, type DispatcherSource } from './transport.js'

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE'

/**
 * A request body whose producer reuses its buffers: each chunk is lent until the next is asked for.
 * undici writes an iterable body one chunk at a time and asks for the next only once the socket
 * took the chunk, or, when the write was not taken at once, after 'drain' (every buffered byte
 * handed to the kernel). A chunk of less than the socket's high-water mark (64 KiB) can be taken
 * into its buffer and still be waiting there, so a producer lends only chunks at least that large.
 */
export type LentBody = AsyncIterable<Buffer>

export interface Exchange {
  method: HttpMethod
  url: URL
  headers: Record<string, string>
  /**
   * Only replayable bodies: a request may be sent more than once (retries, auth). A stream body
   * comes from a function called once per send (an upload read from a file): a Readable, or a LentBody.
   */
  body?: Buffer | string | (() => Readable | LentBody)
  signal?: AbortSignal
}

/** A response whose body must be consumed (read, piped) or dumped. */
export class ClientResponse {
  readonly status: number
  /** The URL that answered, after redirects. */
  readonly url: URL
  readonly body: Readable
  readonly #headers: IncomingHttpHeaders
  readonly #what: string

  constructor(status: number, url: URL, headers: IncomingHttpHeaders, body: Readable, what: string) {
    this.status = status
    this.url = url
    this.#headers = headers
    this.body = body
    this.#what = what
  }

  /** The header's value; repeated headers are joined with `, `. */
  header(name: string): string | undefined {
    const value = this.#headers[name.toLowerCase()]
    return Array.isArray(value) ? value.join(', ') : value
  }

  /** Each occurrence of a header separately (WWW-Authenticate, Link). */
  headerValues(name: string): string[] {
    const value = this.#headers[name.toLowerCase()]
    return value === undefined ? [] : Array.isArray(value) ? value : [value]
  }

  /** Content-Length as a number, undefined when absent or malformed. */
  contentLength(): number | undefined {
    const value = this.header('content-length')
    return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined
  }

  /**
   * Discards the body. Small remainders are drained so the connection is reused; large ones
   * close it instead. Never throws: it runs on error paths.
   */
  async dump(): Promise<void> {
    if (this.body.readableEnded || this.body.destroyed) return
    try {
      await (this.body as Dispatcher.ResponseData['body']).dump({ limit: 64 * 1024 })
    } catch {
      this.body.destroy()
    }
  }

  /** Reads the whole body, failing (and closing it) past `limit` bytes. */
  async read(limit: number): Promise<Buffer> {
    const declared = this.contentLength()
    if (declared !== undefined && declared > limit) {
      await this.dump()
      throw new ClientError('protocol', `${this.#what}: body of ${declared} bytes exceeds the ${limit}-byte limit`)
    }
    const chunks: Buffer[] = []
    let total = 0
    try {
      for await (const chunk of this.body) {
        const buffer = chunk as Buffer
        total += buffer.length
        if (total > limit) {
          this.body.destroy()
          throw new ClientError('protocol', `${this.#what}: body exceeds the ${limit}-byte limit`)
        }
        chunks.push(buffer)
      }
    } catch (err) {
      throw toClientError(err, this.#what)
    }
    return Buffer.concat(chunks, total)
  }
}

/** Names a request in messages: method, host and path, never the query (it may carry tokens). */
export function describe(method: string, url: URL): string {
  return `${method} ${url.host}${url.pathname}`
}

/** Sends requests over an upstream's connections (see transport.ts: CA, client certificate, proxy). */
export class HttpTransport {
  readonly #source: DispatcherSource
  readonly #sendStallMs: number | undefined

  /** Without `source`, direct connections verified against the public roots (with `source`, only `sendStallMs` of `timeouts` applies). */
  constructor(timeouts: ClientTimeouts = {}, source?: DispatcherSource) {
    this.#source = source ?? new Transport({ timeouts })
    this.#sendStallMs = timeouts.sendStallMs
  }

  #body(body: Exchange['body'], what: string, stall: AbortController): Readable | LentBody | Buffer | string | null {
    if (typeof body !== 'function') return body ?? null
    const source = body()
    if (this.#sendStallMs === undefined) return source
    if (source instanceof Readable) return watchSendStall(source, this.#sendStallMs, what)
    return watchLentStall(source, this.#sendStallMs, what, (err) => stall.abort(err))
  }

  /** Sends once. Throws ClientError for transport failures, or the abort reason when `signal` fired. */
  async send(exchange: Exchange): Promise<ClientResponse> {
    const { method, url, headers, body, signal } = exchange
    const what = describe(method, url)
    // A lent body's stall cannot fail the body (undici waits on the socket, not on it): it aborts the request.
    const stall = new AbortController()
    const watched = typeof body === 'function' && this.#sendStallMs !== undefined
    try {
      // Chosen per request: the transport may have been rotated since the last one.
      const response = await this.#source.dispatcherFor(url).request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method,
        headers,
        // undici takes async iterables (core/request.js); its types leave them out.
        body: this.#body(body, what, stall) as Dispatcher.RequestOptions['body'],
        signal: watched ? (signal ? AbortSignal.any([signal, stall.signal]) : stall.signal) : (signal ?? null),
      })
      // A connection dropped right after the headers errors the body before its reader (a few
      // awaits up the stack) attaches: readers see that through the stream's state (`for await`,
      // `finished`, pipeline), so here it must not become an uncaught exception.
      response.body.on('error', () => {})
      return new ClientResponse(response.statusCode, url, response.headers, response.body, what)
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err
      if (stall.signal.aborted) throw stall.signal.reason as Error
      throw toClientError(err, what)
    }
  }

  async close(): Promise<void> {
    await this.#source.destroy()
  }
}
