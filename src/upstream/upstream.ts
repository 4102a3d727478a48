// What the pull-through proxy needs from the registry it mirrors. Read-only by design: a mirror
// never writes upstream. No HTTP-library types appear here so a test double (or a second kind
// of upstream) can implement it without undici.
import type { Readable } from 'node:stream'
import type { Digest } from '../core/digest.js'
import { RegistryError, type ErrorCode, type ErrorDetail, type RegistryErrorOptions } from '../core/errors.js'
import type { ByteRange } from '../core/range.js'
import type { Op } from '../core/registry.js'

export interface UpstreamDescriptor {
  digest: Digest
  /** The Content-Type the upstream declared, without parameters. */
  mediaType: string
  size: number
}

export interface UpstreamManifest extends UpstreamDescriptor {
  /** The exact bytes; their digest has been checked against `digest`. */
  bytes: Buffer
}

export interface UpstreamBlob {
  /** Size of the whole blob (not of the range). */
  size: number
  /** Set only when the upstream honoured the requested range (206); a 200 carries the whole blob. */
  range?: ByteRange
  /**
   * The bytes as they arrive, NOT verified against the digest: whoever stores them must hash
   * them. The caller must consume or destroy the stream, or the connection leaks. It errors when
   * the upstream connection fails or stalls mid-body.
   */
  stream: Readable
}

/**
 * Every method answers `undefined` when the upstream says the thing does not exist (404), and
 * throws an UpstreamUnavailableError when the upstream gave no usable answer: unreachable,
 * timed out, 5xx, rate limited (TOOMANYREQUESTS with `retry-after` when the upstream sent
 * one), its token service refused our credentials, or it sent content that fails verification.
 * An upstream that answers a request 401 or 403 even after we authenticated has answered "no"
 * for that repository (Docker Hub says 401 for repositories that do not exist): that is a plain
 * UpstreamDeniedError (DENIED, 403) naming the upstream, not a failure, and never a 401, which
 * would make our client re-authenticate against us for nothing. When we have no credentials for
 * the upstream, that DENIED (and a token service refusing our anonymous request) says which
 * settings would provide a login. A manifest 404 whose message says the Accept list excludes the
 * upstream's type throws MANIFEST_UNKNOWN carrying that message. Invalid names or references throw
 * NAME_INVALID / TAG_INVALID / DIGEST_INVALID before any request; an unsatisfiable range throws
 * RANGE_INVALID. An aborted `op.signal` rejects with the abort reason.
 */
export interface Upstream {
  /** The configured name, e.g. `gcr.io`; it names the upstream in error messages. */
  readonly name: string
  /**
   * HEAD manifests/<reference>, forwarding `op.accept` as the Accept list (with the four manifest
   * types named when it takes any manifest: empty, or `*\/*`). The upstream may answer with another type than asked, or 404 when it has
   * the manifest only in a type the Accept list excludes (distribution does for OCI types).
   */
  resolve(repo: string, reference: string, op?: Op): Promise<UpstreamDescriptor | undefined>
  /**
   * GET manifests/<reference>. At most 4 MiB is read; the digest is recomputed and must match
   * Docker-Content-Digest and, when `reference` is a digest, the reference.
   */
  getManifest(repo: string, reference: string, op?: Op): Promise<UpstreamManifest | undefined>
  /** HEAD blobs/<digest>. */
  statBlob(repo: string, digest: Digest, op?: Op): Promise<{ size: number } | undefined>
  /** GET blobs/<digest>, optionally one range; redirects (CDNs) are followed. */
  openBlob(repo: string, digest: Digest, options?: { range?: ByteRange } & Op): Promise<UpstreamBlob | undefined>
  /** GET tags/list, following Link pagination up to a cap (a longer list is cut short). */
  listTags(repo: string, op?: Op): Promise<string[] | undefined>
}

/**
 * The upstream could not give an answer. The proxy tells this apart from "not found" (which is
 * `undefined`) and from a denial (a plain RegistryError) to decide to serve what it has cached
 * instead, or to count the upstream as down.
 */
export class UpstreamUnavailableError extends RegistryError {
  readonly upstreamFailure = true
  /** The upstream's configured name. */
  readonly upstream: string
  /**
   * Its token service refused our credentials (revoked, expired, wrong): the upstream answered,
   * it is not down, so this does not count toward its circuit breaker.
   */
  readonly credentialsRefused: boolean

  constructor(
    upstream: string,
    code: ErrorCode,
    message: string,
    detail?: ErrorDetail,
    options?: RegistryErrorOptions & { credentialsRefused?: boolean },
  ) {
    super(code, message, detail, options)
    this.name = 'UpstreamUnavailableError'
    this.upstream = upstream
    this.credentialsRefused = options?.credentialsRefused ?? false
  }
}

export function isUpstreamFailure(err: unknown): err is UpstreamUnavailableError {
  return err instanceof UpstreamUnavailableError
}

/**
 * The upstream answered 401/403 although we authenticated: no access to that repository with our
 * credentials (or, at Docker Hub, no such repository). DENIED, never 401.
 */
export class UpstreamDeniedError extends RegistryError {
  readonly upstream: string

  constructor(upstream: string, message: string, detail?: ErrorDetail) {
    super('DENIED', message, detail)
    this.name = 'UpstreamDeniedError'
    this.upstream = upstream
  }
}

/**
 * The upstream could not or would not answer (down, failing, or refusing our credentials): what
 * is cached may be served instead, marked stale. A site keeps pulling what it has when its
 * upstream credentials break.
 */
export function isServableFromCache(err: unknown): err is UpstreamUnavailableError | UpstreamDeniedError {
  return err instanceof UpstreamUnavailableError || err instanceof UpstreamDeniedError
}
