// The one error model: the OCI Distribution error catalogue plus the few codes CNCF distribution
// added that clients understand. Handlers throw RegistryError; the HTTP layer turns it into
// {"errors":[{code,message,detail}]} with the status below. Anything else is a 500 UNKNOWN.

export const errorCatalogue = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Not in the OCI table but spoken by CNCF distribution and understood by clients.
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof errorCatalogue

export interface RegistryErrorOptions {
  /** Overrides the catalogue's status where the spec asks for another (e.g. 413, 415, 416). */
  status?: number
  /** Extra response headers, e.g. Retry-After or Content-Range. */
  headers?: Record<string, string>
  cause?: unknown
}

/** Structured context for an error: a sentence, or named values rendered as `key=value` pairs. */
export type ErrorDetail = string | Record<string, unknown>

function renderDetail(detail: ErrorDetail): string {
  if (typeof detail === 'string') return detail
  return Object.entries(detail)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ')
}

export class RegistryError extends Error {
  readonly code: ErrorCode
  readonly status: number
  readonly detail: ErrorDetail | undefined
  readonly headers: Record<string, string>

  constructor(code: ErrorCode, message?: string, detail?: ErrorDetail, options: RegistryErrorOptions = {}) {
    super(message ?? errorCatalogue[code].message, { cause: options.cause })
    this.name = 'RegistryError'
    this.code = code
    this.status = options.status ?? errorCatalogue[code].status
    this.detail = detail
    this.headers = options.headers ?? {}
  }

  /** The wire form. `detail` is always a string: common clients (the conformance suite's among them) decode it as one. */
  toJSON(): { code: ErrorCode; message: string; detail?: string } {
    return this.detail === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, detail: renderDetail(this.detail) }
  }
}

export function isRegistryError(err: unknown): err is RegistryError {
  return err instanceof RegistryError
}

/** A write failed because the volume (or a quota on it) is full: ENOSPC or EDQUOT. */
export function isOutOfSpace(err: unknown): err is NodeJS.ErrnoException {
  const code = (err as { code?: unknown } | undefined)?.code
  return code === 'ENOSPC' || code === 'EDQUOT'
}

/** Storage is full, as a write reports it: the errno, or the 507 the lifecycle turns it into. */
export function isStorageFull(err: unknown): boolean {
  return isOutOfSpace(err) || (isRegistryError(err) && err.status === 507)
}
