// An OCI distribution client for one registry: authentication (Basic and Bearer token
// exchange), retries with backoff for idempotent requests, and manual redirects that never
// carry our Authorization to another origin (CDN and object-store URLs are pre-signed, and
// must not learn the registry token).
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Authenticator } from './authenticator.js'
import { ClientError } from './client-error.js'
import type { CredentialProvider } from './credentials.js'
import { HttpTransport, describe, type ClientResponse, type Exchange, type HttpMethod, type LentBody } from './http-exchange.js'
import type { ClientTimeouts, DispatcherSource } from './transport.js'
import { backoffDelay, retryDelayForResponse, retryPolicy, type RetryOptions, type RetryPolicy } from './retry.js'

export interface RegistryClientOptions {
  /** The registry's base URL, http or https, without a path: `https://gcr.io`, `http://127.0.0.1:5001`. */
  url: string | URL
  credentials?: CredentialProvider
  timeouts?: ClientTimeouts
  /** The connections to use (CA, client certificate, proxy); it then owns the timeouts too. */
  transport?: DispatcherSource
  retries?: RetryOptions
  /** Default `ferry`. */
  userAgent?: string
  /** Redirects followed per request. Default 5. */
  maxRedirects?: number
}

export interface ClientRequest {
  method: HttpMethod
  /** Path and query on the registry, e.g. `/v2/library/nginx/manifests/latest`. */
  path: string
  headers?: Record<string, string>
  /** Must be replayable: it may be sent again after a 401 or a retryable failure (a stream body: a function opening it). */
  body?: Buffer | string | (() => Readable | LentBody)
  /** The token scope this request needs (`repository:<repo>:pull`), used when a challenge names none. */
  scope?: string
  signal?: AbortSignal
}

const redirectStatuses = new Set([301, 302, 303, 307, 308])

/** The token scope for pulling from `repo`. */
export function pullScope(repo: string): string {
  return `repository:${repo}:pull`
}

export class RegistryClient {
  /** The registry's origin, e.g. `https://gcr.io`. */
  readonly url: URL
  readonly #transport: HttpTransport
  readonly #auth: Authenticator
  readonly #retry: RetryPolicy
  readonly #userAgent: string
  readonly #maxRedirects: number

  constructor(options: RegistryClientOptions) {
    const url = new URL(options.url)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`registry URL must be http or https: ${url.protocol}`)
    if (url.username !== '' || url.password !== '') throw new Error('registry URL must not carry credentials; use a credential provider')
    if (url.pathname !== '/' || url.search !== '') throw new Error(`registry URL must not have a path or query: ${url.host}${url.pathname}`)
    this.url = url
    this.#retry = retryPolicy(options.retries)
    this.#userAgent = options.userAgent ?? 'ferry'
    this.#maxRedirects = options.maxRedirects ?? 5
    this.#transport = new HttpTransport(options.timeouts, options.transport)
    this.#auth = new Authenticator({
      host: url.host,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      send: (exchange) => this.#sendWithRetries(exchange),
      userAgent: this.#userAgent,
    })
  }

  /**
   * Sends a request, authenticating, retrying and following redirects (GET/HEAD only) as needed.
   * Any status is returned as a response whose body the caller must consume or dump. Throws
   * ClientError when no response could be had, or the abort reason when `signal` fired.
   */
  async request(request: ClientRequest): Promise<ClientResponse> {
    if (!request.path.startsWith('/')) throw new Error('request path must start with /')
    const origin = this.url.origin
    const { method, signal } = request
    const followRedirects = method === 'GET' || method === 'HEAD'
    let url = new URL(request.path, this.url)
    let authorization = await this.#auth.preemptive(origin, request.scope, signal)
    let authRetried = false
    let redirects = 0

    for (;;) {
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...request.headers }
      if (authorization !== undefined && url.origin === origin) headers.authorization = authorization
      const exchange: Exchange = { method, url, headers }
      if (request.body !== undefined) exchange.body = request.body
      if (signal !== undefined) exchange.signal = signal
      const response = await this.#sendWithRetries(exchange)

      const location = response.header('location')
      if (followRedirects && redirectStatuses.has(response.status) && location !== undefined) {
        await response.dump()
        if (++redirects > this.#maxRedirects) {
          throw new ClientError(
            'protocol',
            `${describe(method, new URL(request.path, this.url))}: more than ${this.#maxRedirects} redirects`,
          )
        }
        url = redirectTarget(location, url)
        continue
      }

      // Only the registry itself gets to challenge us: a 401 from a redirect target is its answer.
      if (response.status === 401 && url.origin === origin && !authRetried) {
        let next: string | undefined
        try {
          next = await this.#auth.respond(origin, response.headerValues('www-authenticate'), request.scope, authorization, signal)
        } catch (err) {
          await response.dump()
          throw err
        }
        if (next !== undefined) {
          await response.dump()
          authorization = next
          authRetried = true
          continue
        }
      }
      return response
    }
  }

  /** Closes every connection of this client. Requests in flight fail. */
  async close(): Promise<void> {
    await this.#transport.close()
  }

  async #sendWithRetries(exchange: Exchange): Promise<ClientResponse> {
    // Only GET and HEAD are safe to send twice; token POSTs and pushes are not retried here.
    const idempotent = exchange.method === 'GET' || exchange.method === 'HEAD'
    for (let attempt = 0; ; attempt++) {
      let response: ClientResponse
      try {
        response = await this.#transport.send(exchange)
      } catch (err) {
        if (!(err instanceof ClientError) || !err.retryable || !idempotent || attempt >= this.#retry.maxRetries) throw err
        await pause(backoffDelay(attempt, this.#retry), exchange.signal)
        continue
      }
      const delay = idempotent ? retryDelayForResponse(response.status, response.header('retry-after'), attempt, this.#retry) : undefined
      if (delay === undefined) return response
      await response.dump()
      await pause(delay, exchange.signal)
    }
  }
}

/** Waits, rejecting with the abort reason (as a request would) when `signal` fires. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal ? { signal } : {})
  } catch (err) {
    throw signal?.aborted ? signal.reason : err
  }
}

function redirectTarget(location: string, from: URL): URL {
  let target: URL
  try {
    target = new URL(location, from)
  } catch {
    throw new ClientError('protocol', `${describe('redirect from', from)}: Location is not a URL`)
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') {
    throw new ClientError('protocol', `${describe('redirect from', from)}: Location is not http(s)`)
  }
  return target
}
