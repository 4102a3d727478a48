// The breaker's state machine, driven through an in-test Upstream whose answers the test sets.
import t from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { BreakerUpstream, type CircuitState } from '../../src/proxy/circuit-breaker.js'
import { UpstreamDeniedError, UpstreamUnavailableError, type Upstream } from '../../src/upstream/upstream.js'

function scriptedUpstream() {
  const state = { fail: false, calls: 0 }
  const answer = async () => {
    state.calls++
    if (state.fail) throw new UpstreamUnavailableError('up', 'UNAVAILABLE', 'upstream up is unavailable')
    return undefined
  }
  const upstream: Upstream = {
    name: 'up',
    resolve: answer,
    getManifest: answer,
    statBlob: answer,
    openBlob: answer,
    listTags: answer,
  }
  return { upstream, state }
}

t.test('opens after consecutive failures, fails fast, probes once after the cooldown', async (t) => {
  const { upstream, state } = scriptedUpstream()
  let now = 0
  const transitions: CircuitState[] = []
  const breaker = new BreakerUpstream(upstream, {
    failures: 3,
    cooldownMs: 1000,
    now: () => now,
    onStateChange: (s) => transitions.push(s),
  })
  const digest = `sha256:${'0'.repeat(64)}` as Digest

  state.fail = true
  for (let i = 0; i < 3; i++) await t.rejects(breaker.statBlob('r', digest), { code: 'UNAVAILABLE' })
  t.equal(breaker.circuit, 'open')
  t.equal(state.calls, 3)
  await t.rejects(breaker.resolve('r', 'v1'), { code: 'UNAVAILABLE', headers: { 'retry-after': '1' } })
  t.equal(state.calls, 3, 'an open circuit does not call the upstream')

  now = 1500
  await t.rejects(breaker.resolve('r', 'v1'), { code: 'UNAVAILABLE' })
  t.equal(state.calls, 4, 'one probe after the cooldown')
  t.equal(breaker.circuit, 'open', 'a failed probe re-opens')

  now = 3000
  state.fail = false
  t.equal(await breaker.resolve('r', 'v1'), undefined, '"not found" is a healthy answer')
  t.equal(breaker.circuit, 'closed')
  t.same(transitions, ['open', 'half-open', 'open', 'half-open', 'closed'])
})

t.test('failures that are not upstream failures do not count', async (t) => {
  const { upstream } = scriptedUpstream()
  const breaker = new BreakerUpstream(
    {
      ...upstream,
      listTags: async () => {
        throw new Error('bug')
      },
    },
    { failures: 1, cooldownMs: 1000 },
  )
  await t.rejects(breaker.listTags('r'), { message: 'bug' })
  t.equal(breaker.circuit, 'closed')
})

t.test('refused credentials and DENIED answers do not count; a refusal ends a half-open probe as healthy', async (t) => {
  let now = 0
  let answer: Error = new UpstreamUnavailableError('up', 'UNAVAILABLE', 'upstream up refused our credentials', undefined, {
    credentialsRefused: true,
  })
  const throwing = async () => {
    throw answer
  }
  const upstream: Upstream = {
    name: 'up',
    resolve: throwing,
    getManifest: throwing,
    statBlob: throwing,
    openBlob: throwing,
    listTags: throwing,
  }
  const breaker = new BreakerUpstream(upstream, { failures: 2, cooldownMs: 1000, now: () => now })
  for (let i = 0; i < 5; i++) await t.rejects(breaker.resolve('r', 'v1'), { message: /refused our credentials/ })
  t.equal(breaker.circuit, 'closed', 'refusals leave it closed')
  answer = new UpstreamDeniedError('up', 'upstream up denied access')
  for (let i = 0; i < 5; i++) await t.rejects(breaker.resolve('r', 'v1'), { code: 'DENIED' })
  t.equal(breaker.circuit, 'closed', 'denials leave it closed')

  answer = new UpstreamUnavailableError('up', 'UNAVAILABLE', 'upstream up is unavailable')
  for (let i = 0; i < 2; i++) await t.rejects(breaker.resolve('r', 'v1'), { code: 'UNAVAILABLE' })
  t.equal(breaker.circuit, 'open')
  now = 1500
  answer = new UpstreamUnavailableError('up', 'UNAVAILABLE', 'upstream up refused our credentials', undefined, { credentialsRefused: true })
  await t.rejects(breaker.resolve('r', 'v1'), { message: /refused our credentials/ })
  t.equal(breaker.circuit, 'closed', 'the upstream answered the probe: it is up')
})
