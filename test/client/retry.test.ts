import t from 'tap'
import { backoffDelay, parseRetryAfter, retryDelayForResponse, retryPolicy } from '../../src/client/retry.js'

t.test('Retry-After: seconds and HTTP dates', async (t) => {
  t.equal(parseRetryAfter('3'), 3_000)
  t.equal(parseRetryAfter(' 0 '), 0)
  const now = Date.parse('2024-01-01T00:00:00Z')
  t.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now), 5_000)
  t.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:00 GMT', now), 0, 'a past date means now')
  t.equal(parseRetryAfter('soon'), undefined)
  t.equal(parseRetryAfter(undefined), undefined)
})

t.test('exponential backoff with jitter stays within [step/2, step] and under the cap', async (t) => {
  const policy = retryPolicy({ baseDelayMs: 100, maxDelayMs: 300 })
  t.equal(
    backoffDelay(0, policy, () => 0),
    50,
  )
  t.equal(
    backoffDelay(0, policy, () => 1),
    100,
  )
  t.equal(
    backoffDelay(1, policy, () => 1),
    200,
  )
  t.equal(
    backoffDelay(5, policy, () => 1),
    300,
  )
})

t.test('which responses are retried', async (t) => {
  const policy = retryPolicy({ maxRetries: 2, maxRetryAfterMs: 10_000 })
  for (const status of [502, 503, 504, 429]) t.type(retryDelayForResponse(status, undefined, 0, policy), 'number', `${status}`)
  for (const status of [200, 400, 401, 404, 500]) t.equal(retryDelayForResponse(status, undefined, 0, policy), undefined, `${status}`)
  t.equal(retryDelayForResponse(503, undefined, 2, policy), undefined, 'retries exhausted')
  t.equal(retryDelayForResponse(429, '4', 0, policy), 4_000, 'Retry-After replaces backoff')
  t.equal(retryDelayForResponse(429, '11', 0, policy), undefined, 'beyond the cap: give up now')
})
