// The Upstream interface over an OCI distribution registry, spoken through client/. This file
// turns HTTP answers into the interface's contract: 404 → undefined, everything else that is not
// a usable answer → UpstreamUnavailableError naming the upstream.
import { digestAlgorithm, digestBytes, tryParseDigest, type Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import { maxManifestBytes } from '../core/manifest.js'
import { acceptsEveryManifestType, baseMediaType, isManifestMediaType, manifestMediaTypes } from '../core/media-types.js'
import type { ByteRange } from '../core/range.js'
import { isRepositoryName, parseReference } from '../core/reference.js'
import type { Op } from '../core/registry.js'
import type { Logger } from 'pino'
import { ClientError } from '../client/client-error.js'
import type { CredentialProvider } from '../client/credentials.js'
import type { ClientResponse } from '../client/http-exchange.js'
import { RegistryClient, pullScope, type ClientRequest } from '../client/registry-client.js'
import type { RetryOptions } from '../client/retry.js'
import type { ClientTimeouts, DispatcherSource } from '../client/transport.js'
import {
  UpstreamDeniedError,
  UpstreamUnavailableError,
  type Upstream,
  type UpstreamBlob,
  type UpstreamDescriptor,
  type UpstreamManifest,
} from './upstream.js'

export interface RegistryUpstreamOptions {
  /** The configured name, e.g. `gcr.io`. */
  name: string
  /** Base URL without a path: `https://gcr.io`, `http://127.0.0.1:5001`. */
  url: string
  credentials?: CredentialProvider
  timeouts?: ClientTimeouts
  /** The upstream's connections (CA, client certificate, proxy); it then owns the timeouts too. */
  transport?: DispatcherSource
  retries?: RetryOptions
  /** `n` asked for per tags/list page; by default the upstream picks its page size. */
  tagPageSize?: number
  /** Pages of tags/list followed before the list is cut short. Default 100. */
  maxTagPages?: number
  userAgent?: string
  /** Warned when the upstream wants a login that we cannot offer (no credentials configured for it). */
  logger?: Pick<Logger, 'warn'>
}

// Bounds one tags/list page like a manifest: the body is buffered to parse it.
const maxTagPageBytes = 4 * 1024 * 1024
// An error body is read only for its message.
const maxErrorBodyBytes = 64 * 1024

export class RegistryUpstream implements Upstream {
  readonly name: string
  readonly #client: RegistryClient
  readonly #tagPageSize: number | undefined
  readonly #maxTagPages: number
  readonly #credentials: CredentialProvider | undefined
  readonly #logger: Pick<Logger, 'warn'> | undefined

  constructor(options: RegistryUpstreamOptions) {
    this.name = options.name
    this.#client = new RegistryClient({
      url: options.url,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.timeouts ? { timeouts: options.timeouts } : {}),
      ...(options.transport ? { transport: options.transport } : {}),
      ...(options.retries ? { retries: options.retries } : {}),
      ...(options.userAgent ? { userAgent: options.userAgent } : {}),
    })
    this.#tagPageSize = options.tagPageSize
    this.#maxTagPages = options.maxTagPages ?? 100
    this.#credentials = options.credentials
    this.#logger = options.logger
  }

  async resolve(repo: string, reference: string, op: Op = {}): Promise<UpstreamDescriptor | undefined> {
    const ref = parseReference(reference)
    const response = await this.#send(repo, 'HEAD', manifestPath(repo, reference), op, { accept: acceptHeader(op.accept) })
    if (response.status === 404) return this.#notFound(response)
    if (response.status !== 200) throw await this.#failure(response, repo)
    await response.dump()
    const declared = tryParseDigest(response.header('docker-content-digest') ?? '')
    if (
      ref.kind === 'digest' &&
      declared !== undefined &&
      digestAlgorithm(declared) === digestAlgorithm(ref.digest) &&
      declared !== ref.digest
    ) {
      throw this.#mismatch(repo, reference, declared)
    }
    const digest = ref.kind === 'digest' ? ref.digest : declared
    const size = response.contentLength()
    const mediaType = baseMediaType(response.header('content-type'))
    // Registries that leave out what a HEAD should carry still answer a GET fully.
    if (digest === undefined || size === undefined || !isManifestMediaType(mediaType)) {
      const manifest = await this.getManifest(repo, reference, op)
      return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size }
    }
    return { digest, mediaType, size }
  }

  async getManifest(repo: string, reference: string, op: Op = {}): Promise<UpstreamManifest | undefined> {
    const ref = parseReference(reference)
    const response = await this.#send(repo, 'GET', manifestPath(repo, reference), op, { accept: acceptHeader(op.accept) })
    if (response.status === 404) return this.#manifestNotFound(response, repo, reference, op)
    if (response.status !== 200) throw await this.#failure(response, repo)
    const bytes = await this.#guard(repo, op, () => response.read(maxManifestBytes))
    const declared = tryParseDigest(response.header('docker-content-digest') ?? '')
    const expected = ref.kind === 'digest' ? ref.digest : declared
    const digest = digestBytes(bytes, expected ? digestAlgorithm(expected) : 'sha256')
    if (expected !== undefined && digest !== expected) throw this.#mismatch(repo, reference, digest)
    if (declared !== undefined && declared !== expected && digestBytes(bytes, digestAlgorithm(declared)) !== declared) {
      throw this.#mismatch(repo, reference, digest)
    }
    return { digest, mediaType: manifestMediaType(response.header('content-type'), bytes), size: bytes.length, bytes }
  }

  async statBlob(repo: string, digest: Digest, op: Op = {}): Promise<{ size: number } | undefined> {
    const response = await this.#send(repo, 'HEAD', `/v2/${repo}/blobs/${digest}`, op)
    if (response.status === 404) return this.#notFound(response)
    if (response.status !== 200) throw await this.#failure(response, repo)
    await response.dump()
    const size = response.contentLength()
    if (size === undefined) throw this.#unavailable(repo, 'answered a blob HEAD without Content-Length')
    return { size }
  }

  async openBlob(repo: string, digest: Digest, options: { range?: ByteRange } & Op = {}): Promise<UpstreamBlob | undefined> {
    const { range } = options
    const headers: Record<string, string> = range ? { range: `bytes=${range.start}-${range.end}` } : {}
    const response = await this.#send(repo, 'GET', `/v2/${repo}/blobs/${digest}`, options, headers)
    if (response.status === 404) return this.#notFound(response)
    if (response.status === 416 && range) {
      await response.dump()
      throw new RegistryError('RANGE_INVALID', 'requested range not satisfiable', { digest, range: `${range.start}-${range.end}` })
    }
    if (response.status === 200) {
      const size = response.contentLength()
      if (size === undefined) {
        await response.dump()
        throw this.#unavailable(repo, 'sent a blob without Content-Length')
      }
      return { size, stream: response.body }
    }
    if (response.status === 206 && range) {
      const served = parseContentRange(response.header('content-range'))
      if (served === undefined || served.range.start !== range.start || served.range.end > range.end) {
        await response.dump()
        throw this.#unavailable(repo, 'answered a range request with another range')
      }
      return { size: served.size, range: served.range, stream: response.body }
    }
    throw await this.#failure(response, repo)
  }

  async listTags(repo: string, op: Op = {}): Promise<string[] | undefined> {
    const tags: string[] = []
    const seen = new Set<string>()
    let path = `/v2/${repo}/tags/list${this.#tagPageSize !== undefined ? `?n=${this.#tagPageSize}` : ''}`
    for (let page = 0; page < this.#maxTagPages && !seen.has(path); page++) {
      seen.add(path)
      const response = await this.#send(repo, 'GET', path, op)
      if (response.status === 404) return page === 0 ? this.#notFound(response) : (await response.dump(), tags)
      if (response.status !== 200) throw await this.#failure(response, repo)
      const body = await this.#guard(repo, op, () => response.read(maxTagPageBytes))
      tags.push(...this.#parseTags(body, repo))
      const next = nextLink(response.headerValues('link'), response.url)
      // A Link elsewhere would take our credentials and the request to another host: stop.
      if (next === undefined || next.origin !== this.#client.url.origin) return tags
      path = `${next.pathname}${next.search}`
    }
    return tags
  }

  /** Closes the upstream's connections. */
  async close(): Promise<void> {
    await this.#client.close()
  }

  async #send(repo: string, method: 'GET' | 'HEAD', path: string, op: Op, headers: Record<string, string> = {}): Promise<ClientResponse> {
    // Names reach a URL path: only grammatical ones, so none can climb out of /v2/<repo>/.
    if (!isRepositoryName(repo)) throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: repo.slice(0, 300) })
    const request: ClientRequest = { method, path, headers, scope: pullScope(repo), ...(op.signal ? { signal: op.signal } : {}) }
    return this.#guard(repo, op, () => this.#client.request(request))
  }

  /** Runs `action`, turning client failures into UpstreamUnavailableError; aborts pass through. */
  async #guard<T>(repo: string, op: Op, action: () => Promise<T>): Promise<T> {
    try {
      return await action()
    } catch (err) {
      if (op.signal?.aborted || !(err instanceof ClientError)) throw err
      // A token service refusing an anonymous request wants a login, which we have none to give.
      if (err.kind === 'auth' && (await this.#anonymous())) throw this.#loginWanted(repo, err.message)
      throw this.#unavailable(repo, clientFailure[err.kind], err)
    }
  }

  /** Whether we send no credentials to this upstream: none configured, or none for its host. */
  async #anonymous(): Promise<boolean> {
    if (this.#credentials === undefined) return true
    try {
      return (await this.#credentials.credentials(this.#client.url.host)) === undefined
    } catch {
      return false
    }
  }

  /** DENIED with the settings that would provide a login, in the answer and in a warning. */
  #loginWanted(repo: string, upstreamAnswer: string | number): UpstreamDeniedError {
    const hint =
      `no credentials are configured for upstream ${this.name}: set gcrKeyPath or pullCredentialConfigPath on it ` +
      '(mirror.upstreams), or mirror.pullCredentialConfigPath'
    this.#logger?.warn({ upstream: this.name, repo, answer: upstreamAnswer, hint }, 'upstream denied access')
    return new UpstreamDeniedError(this.name, `upstream ${this.name} denied access: it wants a login`, { upstream: this.name, repo, hint })
  }

  async #notFound(response: ClientResponse): Promise<undefined> {
    await response.dump()
    return undefined
  }

  /**
   * A manifest 404 is "no such manifest", unless the upstream says it has one in a type the Accept
   * list excludes (distribution: "OCI manifest found, but accept header does not support OCI
   * manifests"): that reason is the client's to hear, so it throws MANIFEST_UNKNOWN carrying it.
   */
  async #manifestNotFound(response: ClientResponse, repo: string, reference: string, op: Op): Promise<undefined> {
    const message = upstreamErrorMessage(await response.read(maxErrorBodyBytes).catch(() => Buffer.alloc(0)))
    if (message === undefined || !/\baccept|media.?type/i.test(message)) return undefined
    throw new RegistryError('MANIFEST_UNKNOWN', `upstream ${this.name} has the manifest only in a media type the Accept header excludes`, {
      upstream: this.name,
      repo,
      reference,
      accepted: acceptHeader(op.accept),
      upstreamMessage: message.slice(0, 300),
    })
  }

  async #failure(response: ClientResponse, repo: string): Promise<RegistryError> {
    await response.dump()
    const { status } = response
    const detail = { upstream: this.name, repo, status }
    if (status === 429) {
      const retryAfter = response.header('retry-after')
      const headers: Record<string, string> = retryAfter !== undefined ? { 'retry-after': retryAfter } : {}
      return new UpstreamUnavailableError(this.name, 'TOOMANYREQUESTS', `upstream ${this.name} is rate limiting requests`, detail, {
        headers,
      })
    }
    if (status === 401 || status === 403) {
      if (await this.#anonymous()) return this.#loginWanted(repo, status)
      // A repository-specific "no", after we presented whatever credentials we have.
      return new UpstreamDeniedError(this.name, `upstream ${this.name} denied access`, detail)
    }
    return new UpstreamUnavailableError(this.name, 'UNAVAILABLE', `upstream ${this.name} answered ${status}`, detail)
  }

  // The client's error (URL, errno) stays in `cause` for the boundary log: upstream URLs can be
  // internal, so the detail our client sees names only the configured upstream.
  #unavailable(repo: string, what: string, cause?: ClientError): UpstreamUnavailableError {
    const credentialsRefused = cause?.kind === 'auth'
    return new UpstreamUnavailableError(
      this.name,
      'UNAVAILABLE',
      `upstream ${this.name} ${what}`,
      { upstream: this.name, repo },
      { cause, credentialsRefused },
    )
  }

  #mismatch(repo: string, reference: string, actual: Digest | undefined): UpstreamUnavailableError {
    return new UpstreamUnavailableError(this.name, 'UNAVAILABLE', `upstream ${this.name} sent a manifest that does not match its digest`, {
      upstream: this.name,
      repo,
      reference,
      actual,
    })
  }

  #parseTags(body: Buffer, repo: string): string[] {
    let document: unknown
    try {
      document = JSON.parse(body.toString('utf8'))
    } catch {
      throw this.#unavailable(repo, 'sent a tag list that is not JSON')
    }
    const tags = (document as { tags?: unknown } | null)?.tags
    // Some registries send `"tags": null` for a repository without tags.
    if (tags === null || tags === undefined) return []
    if (!Array.isArray(tags)) throw this.#unavailable(repo, 'sent a malformed tag list')
    return tags.filter((tag): tag is string => typeof tag === 'string')
  }
}

const clientFailure: Record<ClientError['kind'], string> = {
  unreachable: 'is unreachable',
  timeout: 'timed out',
  auth: 'refused our credentials',
  unavailable: 'token service is unavailable',
  protocol: 'broke the protocol',
  tls: 'failed the TLS handshake (untrusted or mismatched certificate, or our client certificate was refused; see its tls settings)',
}

/** The first message of an OCI error body (`{"errors":[{"message":…}]}`), if it is one. */
function upstreamErrorMessage(body: Buffer): string | undefined {
  try {
    const first = (JSON.parse(body.toString('utf8')) as { errors?: { message?: unknown }[] } | null)?.errors?.[0]
    return typeof first?.message === 'string' ? first.message : undefined
  } catch {
    return undefined
  }
}

function manifestPath(repo: string, reference: string): string {
  return `/v2/${repo}/manifests/${reference}`
}

/**
 * The client's Accept list forwarded whole. A client that takes any manifest (no Accept, curl's
 * `*\/*`) gets every manifest type named as well: registries answer a bare `*\/*` with 404 for
 * OCI manifests (distribution) or with a down-converted one.
 */
function acceptHeader(accept: readonly string[] = []): string {
  if (!acceptsEveryManifestType(accept)) return accept.join(', ')
  return [...manifestMediaTypes, ...accept.filter((type) => !isManifestMediaType(type))].join(', ')
}

/** The declared type when it is a manifest type, else the document's own `mediaType` field. */
function manifestMediaType(contentType: string | undefined, bytes: Buffer): string {
  const declared = baseMediaType(contentType)
  if (isManifestMediaType(declared)) return declared
  try {
    const field = (JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown } | null)?.mediaType
    if (typeof field === 'string' && field !== '') return field
  } catch {
    // Not JSON: whoever stores it will reject it; report what was declared.
  }
  return declared
}

function parseContentRange(value: string | undefined): { range: ByteRange; size: number } | undefined {
  const match = /^\s*bytes\s+(\d+)-(\d+)\/(\d+)\s*$/i.exec(value ?? '')
  if (!match) return undefined
  const [start, end, size] = [Number(match[1]), Number(match[2]), Number(match[3])]
  return end >= start && end < size ? { range: { start, end }, size } : undefined
}

/** The `rel="next"` target of Link headers, resolved against the page's URL. */
function nextLink(values: readonly string[], base: URL): URL | undefined {
  for (const value of values) {
    for (const match of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
      if (!/;\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?/i.test(match[2] ?? '')) continue
      try {
        return new URL(match[1] ?? '', base)
      } catch {
        return undefined
      }
    }
  }
  return undefined
}
