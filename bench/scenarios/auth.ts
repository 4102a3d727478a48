// Scenario 7: authenticated pulls (issue #18). A warm manifest GET by tag on one Ferry, 64
// connections, as an anonymous client, with the bench user's Basic credentials on every request
// (containerd with a pull secret), and with a Bearer token of Ferry's token service (docker's
// flow); the target is ≥ 0.8× the anonymous rate for both. The three run in an order rotated
// every round.
import { join } from 'node:path'
import autocannon from 'autocannon'
import { mediaTypes } from '../../src/core/media-types.js'
import { pushImage, smallImage } from '../lib/images.js'
import { basicAuthorization, startFerry } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/auth'
const tagAccept = [mediaTypes.dockerManifest, mediaTypes.dockerManifestList, mediaTypes.ociManifest, mediaTypes.ociIndex, '*/*'].join(', ')

export const authPulls: Scenario = {
  name: 'auth',
  title: '7. Authenticated manifest GET by tag, 64 connections',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const ferry = await startFerry({ name: 'ferry', dir: join(ctx.dir, 'ferry') })
    await pushImage(ferry, repo, 'v1', smallImage('auth-image'))
    const answer = await fetch(`${ferry.url}/token?scope=repository:${repo}:pull`, { headers: { authorization: basicAuthorization() } })
    if (answer.status !== 200) throw new Error(`ferry /token: ${answer.status}`)
    const { token } = (await answer.json()) as { token: string }
    const clients: Record<string, Record<string, string>> = {
      anonymous: {},
      basic: { authorization: basicAuthorization() },
      bearer: { authorization: `Bearer ${token}` },
    }
    const url = `${ferry.url}/v2/${repo}/manifests/v1`
    const load = async (headers: Record<string, string>, seconds: number) => {
      const r = await autocannon({ url, headers: { ...headers, accept: tagAccept }, connections: s.manifestConnections, duration: seconds })
      if (r.non2xx + r.errors + r.timeouts > 0) throw new Error(`ferry GET ${url}: ${r.non2xx} non-2xx, ${r.errors} errors`)
      return { rps: r.requests.total / r.duration, p99: r.latency.p99 }
    }
    progress('auth: warm-up')
    for (const headers of Object.values(clients)) await load(headers, 1)
    const samples = new Samples()
    for (let round = 0; round < s.rounds; round++) {
      for (const name of alternate(Object.keys(clients), round)) {
        progress(`auth: round ${round + 1}/${s.rounds}: ${name}`)
        const r = await quietly(`ferry ${name}`, () => load(clients[name]!, s.manifestSeconds))
        samples.add(name, 'req/s', r.rps)
        samples.add(name, 'p99', r.p99)
      }
    }
    await ferry.stop()
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const markdown = table(
      ['GET by tag (median)', 'req/s', 'p99 ms', '/ anonymous'],
      Object.keys(clients).map((n) => [n, fmt(m(n, 'req/s')), fmt(m(n, 'p99'), 1), ratio(m(n, 'req/s'), m('anonymous', 'req/s'))]),
    )
    const checks = ['basic', 'bearer'].map((n) => ({
      target: `${n === 'basic' ? 'Basic' : 'Bearer'} pulls ≥ 0.8× anonymous (#18)`,
      holds: m(n, 'req/s') >= 0.8 * m('anonymous', 'req/s'),
      measured: ratio(m(n, 'req/s'), m('anonymous', 'req/s')),
    }))
    return { markdown, checks, json: samples.toJSON() }
  },
}
