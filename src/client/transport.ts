// The connections of one upstream: which CA certificates it is verified against, which client
// certificate it is shown (mTLS), and whether a request goes direct or through an HTTP(S) proxy.
// A Transport is immutable; rotation builds a new one and swaps it in (SwitchableTransport), so
// new requests use the new material while requests in flight finish on the connections they have.
import { rootCertificates } from 'node:tls'
import { createRequire } from 'node:module'
import type { Agent, Dispatcher, ProxyAgent } from 'undici'
import { NoProxy } from './no-proxy.js'

export interface ClientTimeouts {
  /** TCP + TLS connect. Default 5 s. */
  connectMs?: number
  /** From sending the request to the end of the response headers. Default 30 s. */
  headersMs?: number
  /** Longest gap between two chunks of a response body. Default 60 s. */
  bodyIdleMs?: number
  /**
   * Longest time a request body's next bytes wait for the connection to take them (the far end
   * stopped reading): the request then fails with a retryable timeout. Default none (only the
   * headers timeout ends such a request). Applies to stream bodies (uploads).
   */
  sendStallMs?: number
}

export interface TlsMaterial {
  /**
   * PEM CA certificates trusted IN ADDITION to Node's bundled public roots (as Docker's certs.d
   * and containerd's hosts.toml `ca` do): a private-CA upstream verifies, and its redirects to
   * public CDNs or object stores still do too.
   */
  ca?: string | Buffer
  /** PEM client certificate (chain) and its private key, shown to upstreams that ask (mTLS). */
  cert?: string | Buffer
  key?: string | Buffer
  /** Skips certificate verification entirely. For tests and emergencies only. */
  insecureSkipVerify?: boolean
}

/** How requests reach their origin. */
export type ProxyChoice =
  | { kind: 'direct' }
  /** Every request of this upstream (redirect targets included) through this proxy. */
  | { kind: 'url'; url: string }
  /** The HTTPS_PROXY / HTTP_PROXY / NO_PROXY rules, chosen per request URL. */
  | { kind: 'rules'; httpsProxy?: string | undefined; httpProxy?: string | undefined; noProxy?: string | undefined }

export interface TransportOptions {
  timeouts?: ClientTimeouts
  tls?: TlsMaterial
  proxy?: ProxyChoice
}

/** Where HttpTransport gets the dispatcher for a request. */
export interface DispatcherSource {
  dispatcherFor(url: URL): Dispatcher
  /** Closes every connection now; requests in flight fail. */
  destroy(): Promise<void>
}

const keepAliveTimeout = 30_000

/**
 * undici, loaded by the first request through a transport: ~6 MiB of RSS that a registry never
 * needs before it asks an upstream (#18). Node's module cache keeps the one copy.
 */
function undici(): typeof import('undici') {
  return createRequire(import.meta.url)('undici') as typeof import('undici')
}

export class Transport implements DispatcherSource {
  // Agents are built by the first request that needs them: a mirror whose upstreams are not
  // asked yet (every start) does not load undici (#18: ~6 MiB of RSS). Proxy URLs are still
  // checked here, so a bad one fails at start.
  readonly #direct: Lazy<Agent>
  /** By proxy URL: one ProxyAgent per distinct proxy. */
  readonly #proxies = new Map<string, Lazy<ProxyAgent>>()
  readonly #choose: (url: URL) => string | undefined

  constructor(options: TransportOptions = {}) {
    const timeouts = options.timeouts ?? {}
    const connectTimeout = timeouts.connectMs ?? 5_000
    const tls = tlsOptions(options.tls ?? {})
    const agentOptions = {
      headersTimeout: timeouts.headersMs ?? 30_000,
      bodyTimeout: timeouts.bodyIdleMs ?? 60_000,
      keepAliveTimeout,
    }
    this.#direct = lazy(() => new (undici().Agent)({ ...agentOptions, connect: { timeout: connectTimeout, ...tls } }))
    this.#choose = proxyChooser(options.proxy ?? { kind: 'direct' })
    for (const url of proxyUrls(options.proxy)) {
      const { uri, token } = splitProxyCredentials(url)
      const proxyOptions = {
        ...agentOptions,
        uri,
        ...(token ? { token } : {}),
        // Always CONNECT, plain-http targets included: the proxy sees a host:port, never a path.
        proxyTunnel: true,
        requestTls: { timeout: connectTimeout, ...tls },
        proxyTls: { timeout: connectTimeout },
      }
      this.#proxies.set(
        url,
        lazy(() => new (undici().ProxyAgent)(proxyOptions)),
      )
    }
  }

  dispatcherFor(url: URL): Dispatcher {
    const proxy = this.#choose(url)
    return ((proxy !== undefined ? this.#proxies.get(proxy) : undefined) ?? this.#direct).get()
  }

  /** Waits for requests in flight (bodies included) to finish, then closes the connections. */
  async close(): Promise<void> {
    await Promise.all(this.#built().map((agent) => agent.close()))
  }

  async destroy(): Promise<void> {
    await Promise.all(this.#built().map((agent) => agent.destroy(null)))
  }

  #built(): Dispatcher[] {
    return [this.#direct, ...this.#proxies.values()].flatMap((agent) => agent.built ?? [])
  }
}

interface Lazy<T> {
  get(): T
  readonly built: T | undefined
}

function lazy<T>(make: () => T): Lazy<T> {
  let value: T | undefined
  return {
    get: () => (value ??= make()),
    get built() {
      return value
    },
  }
}

/**
 * One upstream's current Transport, replaceable while requests run. A replaced transport is
 * closed gracefully: what it carries finishes, and its sockets go once idle.
 */
export class SwitchableTransport implements DispatcherSource {
  #current: Transport
  readonly #retiring = new Set<Promise<void>>()

  constructor(initial: Transport) {
    this.#current = initial
  }

  dispatcherFor(url: URL): Dispatcher {
    return this.#current.dispatcherFor(url)
  }

  /** New requests use `next` from now on; resolves once the previous transport has closed. */
  replace(next: Transport): Promise<void> {
    const previous = this.#current
    this.#current = next
    const closing = previous
      .close()
      .catch(() => undefined)
      .finally(() => this.#retiring.delete(closing))
    this.#retiring.add(closing)
    return closing
  }

  async destroy(): Promise<void> {
    await Promise.all([this.#current.destroy(), ...this.#retiring])
  }
}

/** A proxy URL fit for logs: credentials replaced by `***`. */
export function redactProxyUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.username === '' && parsed.password === '') return url
    parsed.username = '***'
    parsed.password = ''
    return parsed.toString()
  } catch {
    return '(unparseable proxy URL)'
  }
}

function tlsOptions(material: TlsMaterial) {
  return {
    ...(material.ca !== undefined ? { ca: [...rootCertificates, material.ca.toString()] } : {}),
    ...(material.cert !== undefined ? { cert: material.cert } : {}),
    ...(material.key !== undefined ? { key: material.key } : {}),
    ...(material.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
  }
}

// Credentials leave the URL and travel as a Proxy-Authorization token, so no URL held by the
// HTTP library (and so no error message it builds) carries them.
function splitProxyCredentials(url: string): { uri: string; token: string | undefined } {
  const parsed = new URL(url)
  if (parsed.username === '' && parsed.password === '') return { uri: parsed.toString(), token: undefined }
  const credentials = `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`
  parsed.username = ''
  parsed.password = ''
  return { uri: parsed.toString(), token: `Basic ${Buffer.from(credentials).toString('base64')}` }
}

function proxyUrls(choice: ProxyChoice | undefined): string[] {
  if (choice === undefined || choice.kind === 'direct') return []
  if (choice.kind === 'url') return [choice.url]
  return [...new Set([choice.httpsProxy, choice.httpProxy].filter((u): u is string => u !== undefined && u !== ''))]
}

function proxyChooser(choice: ProxyChoice): (url: URL) => string | undefined {
  switch (choice.kind) {
    case 'direct':
      return () => undefined
    case 'url':
      return () => choice.url
    case 'rules': {
      const noProxy = new NoProxy(choice.noProxy)
      return (url) => {
        const proxy = url.protocol === 'https:' ? choice.httpsProxy : choice.httpProxy
        return proxy === undefined || proxy === '' || noProxy.bypasses(url) ? undefined : proxy
      }
    }
  }
}
