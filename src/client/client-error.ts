// Failures of the client itself, as opposed to HTTP responses (which callers get whatever their
// status). Messages name hosts and paths, never credentials or tokens.

export type ClientErrorKind =
  /** No connection could be made or it broke before a response arrived. */
  | 'unreachable'
  /** Connecting, waiting for headers or for body data took too long. */
  | 'timeout'
  /** The token endpoint refused the credentials (or anonymous access). */
  | 'auth'
  /** The token endpoint failed (5xx, unexpected status). */
  | 'unavailable'
  /** The server broke the protocol: redirect loops, oversized or malformed bodies. */
  | 'protocol'
  /** The TLS handshake failed: an untrusted or mismatched certificate, or a refused client certificate. */
  | 'tls'

export class ClientError extends Error {
  readonly kind: ClientErrorKind
  /** Whether an idempotent request may be sent again (connection-level failures only). */
  readonly retryable: boolean

  constructor(kind: ClientErrorKind, message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super(message, { cause: options.cause })
    this.name = 'ClientError'
    this.kind = kind
    this.retryable = options.retryable ?? false
  }
}

export function isClientError(err: unknown): err is ClientError {
  return err instanceof ClientError
}

// Connection-level failures where sending again is safe for GET/HEAD and often succeeds
// (a restarting upstream, a dropped keep-alive socket). Timeouts waiting for headers are not
// retried: the upstream is slow, and a retry would triple the wait.
const retryableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
])
const timeoutCodes = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT'])

/** Turns an error from the HTTP library into a ClientError describing `what` (e.g. `GET host/path`). */
export function toClientError(err: unknown, what: string): ClientError {
  if (err instanceof ClientError) return err
  const code = errorCode(err)
  const retryable = code !== undefined && retryableCodes.has(code)
  if (code !== undefined && isTlsFailure(code)) {
    return new ClientError('tls', `${what}: TLS handshake failed (${code})`, { cause: err })
  }
  if (code !== undefined && timeoutCodes.has(code)) {
    return new ClientError('timeout', `${what}: timed out (${code})`, { cause: err, retryable })
  }
  return new ClientError('unreachable', `${what}: ${code ?? 'connection failed'}`, { cause: err, retryable })
}

// OpenSSL's verification codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN,
// CERT_HAS_EXPIRED, ...), Node's ERR_TLS_* and alerts such as ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED.
function isTlsFailure(code: string): boolean {
  return /^(ERR_TLS_|ERR_SSL_)|CERT|_SIGNATURE|ISSUER/.test(code)
}

function errorCode(err: unknown): string | undefined {
  // undici wraps DNS/connect errors: the useful code may sit on the cause.
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code !== 'UND_ERR') return code
  }
  return undefined
}
