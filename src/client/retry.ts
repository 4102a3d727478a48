// When and how long to wait before sending an idempotent request again.

export interface RetryOptions {
  /** Retries after the first attempt. Default 2. */
  maxRetries?: number
  /** First backoff step; doubles per retry, with jitter. Default 200 ms. */
  baseDelayMs?: number
  /** Upper bound on one backoff step. Default 2 s. */
  maxDelayMs?: number
  /**
   * The longest Retry-After we are willing to wait (default 10 s). A longer one ends retrying
   * at once: the caller gets the response, and its client can decide to wait.
   */
  maxRetryAfterMs?: number
}

export type RetryPolicy = Required<RetryOptions>

export function retryPolicy(options: RetryOptions = {}): RetryPolicy {
  return {
    maxRetries: options.maxRetries ?? 2,
    baseDelayMs: options.baseDelayMs ?? 200,
    maxDelayMs: options.maxDelayMs ?? 2_000,
    maxRetryAfterMs: options.maxRetryAfterMs ?? 10_000,
  }
}

/** Statuses that say "try again later" rather than "no". */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504
}

/** Exponential backoff with jitter (half fixed, half random) so synchronized clients spread out. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt)
  return Math.round(step / 2 + (step / 2) * random())
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. Undefined when absent or malformed. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const date = Date.parse(trimmed)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/**
 * How long to wait before retry number `attempt + 1` of a response with `status`, or undefined
 * when it must not be retried. Retry-After, when sent, replaces the backoff.
 */
export function retryDelayForResponse(
  status: number,
  retryAfter: string | undefined,
  attempt: number,
  policy: RetryPolicy,
): number | undefined {
  if (!isRetryableStatus(status) || attempt >= policy.maxRetries) return undefined
  const requested = parseRetryAfter(retryAfter)
  if (requested === undefined) return backoffDelay(attempt, policy)
  return requested <= policy.maxRetryAfterMs ? requested : undefined
}
