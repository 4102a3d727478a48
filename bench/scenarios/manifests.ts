// Scenario 2: warm manifest GET and HEAD, by tag and by digest, 64 connections (autocannon),
// with the Accept headers containerd sends: a HEAD/GET by tag lists the four manifest types and
// */*, a request by digest the descriptor's type and */*. Plain: Ferry vs distribution, both
// seeded with the same image. Mirror: Ferry (tag inside its TTL) vs distribution's proxy, both in
// front of one seeded distribution upstream whose access log proves Ferry never asked it.
// Beside them the Node file server (baseline-file-server.ts) serving the same manifest file,
// stat and read per request, and `GET /v2/` on every registry against that server's bare
// `node:http` answer to `/v2/`. Server CPU per request is reported too: it moves less with the
// machine's load than the rates do.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { mediaTypes } from '../../src/core/media-types.js'
import { pushImage, smallImage } from '../lib/images.js'
import { basicAuthorization, ensureAccess, startBaseline, startDistribution, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, measured, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/app'
const tag = 'v1'
const tagAccept = [mediaTypes.dockerManifest, mediaTypes.dockerManifestList, mediaTypes.ociManifest, mediaTypes.ociIndex, '*/*'].join(', ')

interface Variant {
  label: string
  method: 'GET' | 'HEAD'
  reference: 'tag' | 'digest' | 'base'
}

const variants: Variant[] = [
  { label: 'GET by tag', method: 'GET', reference: 'tag' },
  { label: 'HEAD by tag', method: 'HEAD', reference: 'tag' },
  { label: 'GET by digest', method: 'GET', reference: 'digest' },
  { label: 'HEAD by digest', method: 'HEAD', reference: 'digest' },
  { label: 'GET /v2/', method: 'GET', reference: 'base' },
]

interface LoadResult {
  requestsPerSecond: number
  p50: number
  p99: number
  bad: number
}

// autocannon's HTTP parser (http-parser-js) does not know a HEAD response has no body and waits
// for Content-Length bytes; its client sets the parser callbacks after setupClient, so the
// patch goes in on the next tick: the headers-complete callback answers "skip the body".
function skipBodies(client: unknown): void {
  process.nextTick(() => {
    const parser = (client as { parser: Record<number, (...args: unknown[]) => unknown> }).parser
    const onHeadersComplete = parser[2]!
    parser[2] = function (this: unknown, ...args: unknown[]) {
      onHeadersComplete.apply(this, args)
      return 1
    }
  })
}

async function load(
  server: Server,
  path: string,
  method: 'GET' | 'HEAD',
  headers: Record<string, string>,
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  const result = await autocannon({
    url: `${server.url}${path}`,
    method,
    headers,
    connections,
    duration: seconds,
    timeout: 10,
    ...(method === 'HEAD' ? { setupClient: skipBodies } : {}),
  })
  return {
    requestsPerSecond: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    bad: result.non2xx + result.errors + result.timeouts,
  }
}

export const manifests: Scenario = {
  name: 'manifests',
  title: '2. Warm manifest GET and HEAD, 64 connections',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const image = smallImage('manifest-image')
    const upstream = await startDistribution({ name: 'upstream', dir: join(ctx.dir, 'upstream') })
    const ferry = await startFerry({ name: 'ferry', dir: join(ctx.dir, 'ferry') })
    const distribution = await startDistribution({ name: 'distribution', dir: join(ctx.dir, 'distribution') })
    // A TTL longer than the whole scenario: every measured tag request is inside it.
    const mirror = await startFerry({ name: 'ferry mirror', dir: join(ctx.dir, 'ferry-mirror'), upstream: upstream.url, tagTtl: '1h' })
    const proxy = await startDistribution({ name: 'distribution proxy', dir: join(ctx.dir, 'distribution-proxy'), proxyOf: upstream.url })
    const files = join(ctx.dir, 'manifest-files')
    await mkdir(files, { recursive: true })
    await writeFile(join(files, 'manifest.json'), image.manifest)
    const node = await startBaseline('node file server', files, join(ctx.dir, 'baseline'))
    for (const registry of [upstream, ferry, distribution]) await pushImage(registry, repo, tag, image)
    const targets = [ferry, distribution, mirror, proxy, node]
    const pathOf = (target: Server, v: Variant): string => {
      if (v.reference === 'base') return '/v2/'
      // The file server reads the same manifest file per request, whatever the reference.
      // 64 KiB reads, Node's default for file streams (its 1 MiB default for blobs would allocate a
      // MiB per 1.4 KB manifest and make it look slower than it is).
      if (target === node) return '/blobs/manifest.json?chunk=65536'
      return `/v2/${repo}/manifests/${v.reference === 'tag' ? tag : image.digest}`
    }
    const acceptOf = (v: Variant): string =>
      v.reference === 'tag' ? tagAccept : v.reference === 'digest' ? `${image.mediaType}, */*` : '*/*'

    // Anonymous where the registry allows it (as containerd pulls), else the bench user.
    for (const target of targets) await ensureAccess(target, pathOf(target, variants[0]!), 'GET', { accept: tagAccept })
    // `GET /v2/` wants a login where accounts exist (Ferry's, so docker learns where to get a
    // token): those registries get the bench user's credentials for it, as a logged-in client.
    const baseHeaders = new Map<Server, Record<string, string>>()
    for (const target of targets) {
      const answer = await fetch(`${target.url}/v2/`, { headers: target.headers })
      await answer.arrayBuffer()
      const login: Record<string, string> = answer.status === 401 ? { authorization: basicAuthorization() } : {}
      if (answer.status === 401) progress(`manifests: ${target.name}: GET /v2/ with the bench user's credentials (anonymous: 401)`)
      baseHeaders.set(target, { ...target.headers, ...login })
    }
    const headersOf = (target: Server, v: Variant): Record<string, string> =>
      v.reference === 'base' ? { ...baseHeaders.get(target), accept: acceptOf(v) } : { ...target.headers, accept: acceptOf(v) }
    const loadOf = (target: Server, v: Variant, seconds: number): Promise<LoadResult> =>
      load(target, pathOf(target, v), v.method, headersOf(target, v), s.manifestConnections, seconds)
    // Warm-up: JIT, and the mirrors fetch and cache the manifest (and the tag) here.
    progress('manifests: warm-up')
    // (The GETs warm the HEAD paths too: same lookups, same caches.)
    for (const target of targets) for (const v of variants.filter((x) => x.method === 'GET')) await loadOf(target, v, 1)

    const samples = new Samples()
    const upstreamCalls = new Map<string, number>()
    let bad = 0
    for (let round = 0; round < s.rounds; round++) {
      for (const v of variants) {
        for (const target of alternate(targets, round)) {
          progress(`manifests: round ${round + 1}/${s.rounds}: ${v.label}: ${target.name}`)
          let calls = 0
          const r = await quietly(`${target.name} ${v.label}`, async () => {
            const before = upstream.accessLog().length
            const result = await measured(target.pid, () => loadOf(target, v, s.manifestSeconds))
            calls = upstream.accessLog().length - before
            return result
          })
          if (target === mirror || target === proxy)
            upstreamCalls.set(`${target.name}\u0000${v.label}`, (upstreamCalls.get(`${target.name}\u0000${v.label}`) ?? 0) + calls)
          if (target === mirror || target === proxy)
            samples.add(target.name, `${v.label} upstream per request`, calls / (r.value.requestsPerSecond * s.manifestSeconds))
          samples.add(target.name, `${v.label} req/s`, r.value.requestsPerSecond)
          samples.add(target.name, `${v.label} p50`, r.value.p50)
          samples.add(target.name, `${v.label} p99`, r.value.p99)
          samples.add(target.name, `${v.label} cpu µs`, (r.cpuSeconds * 1e6) / (r.value.requestsPerSecond * s.manifestSeconds))
          if (r.value.bad > 0) {
            bad += r.value.bad
            progress(`manifests: ${target.name} ${v.label}: ${r.value.bad} non-2xx/errors/timeouts`)
          }
        }
      }
    }
    for (const server of [node, proxy, mirror, distribution, ferry, upstream]) await server.stop()

    const names = targets.map((t) => t.name)
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const throughput = table(
      [
        'req/s (median)',
        ...names,
        'ferry / distribution',
        'ferry mirror / distribution',
        'ferry mirror / distribution proxy',
        'ferry mirror / node',
      ],
      variants.map((v) => {
        const k = `${v.label} req/s`
        return [
          v.label,
          ...names.map((n) => fmt(m(n, k))),
          ratio(m('ferry', k), m('distribution', k)),
          ratio(m('ferry mirror', k), m('distribution', k)),
          ratio(m('ferry mirror', k), m('distribution proxy', k)),
          ratio(m('ferry mirror', k), m('node file server', k)),
        ]
      }),
    )
    const latency = table(
      ['latency p50 / p99 ms (median)', ...names],
      variants.map((v) => [v.label, ...names.map((n) => `${fmt(m(n, `${v.label} p50`), 1)} / ${fmt(m(n, `${v.label} p99`), 1)}`)]),
    )
    const cpu = table(
      ['server CPU µs per request (median)', ...names],
      variants.map((v) => [v.label, ...names.map((n) => fmt(m(n, `${v.label} cpu µs`), 1))]),
    )
    const mirrorCalls = variants.reduce((sum, v) => sum + (upstreamCalls.get(`ferry mirror\u0000${v.label}`) ?? 0), 0)
    const upstreamNote = [
      `Upstream requests during all measured ferry mirror runs: **${mirrorCalls}** (from the upstream's access log).`,
      `distribution proxy asks the upstream ${variants.map((v) => `${fmt(m('distribution proxy', `${v.label} upstream per request`), 2)} times per ${v.label}`).join(', ')}.`,
      'The node file server serves the manifest as a file (stat, open, one 64 KiB read per request) for every manifest row, and its bare `node:http` answer (`{}`) for `GET /v2/`.',
      bad > 0 ? `**${bad} requests failed** (non-2xx, errors or timeouts): see the progress log.` : 'Every request answered 2xx.',
    ].join(' ')
    const tagGet = 'GET by tag'
    const base = 'GET /v2/'
    const best = (metric: string): number => Math.min(m('ferry', metric), m('ferry mirror', metric))
    const checks = [
      {
        target: 'warm manifest GET by tag ≥ 10× distribution plain (ferry and ferry mirror)',
        holds: best(`${tagGet} req/s`) >= 10 * m('distribution', `${tagGet} req/s`),
        measured: `${ratio(m('ferry', `${tagGet} req/s`), m('distribution', `${tagGet} req/s`))} / ${ratio(m('ferry mirror', `${tagGet} req/s`), m('distribution', `${tagGet} req/s`))}`,
      },
      {
        target: 'warm manifest GET by tag (mirror) ≥ 50× distribution proxy',
        holds: m('ferry mirror', `${tagGet} req/s`) >= 50 * m('distribution proxy', `${tagGet} req/s`),
        measured: ratio(m('ferry mirror', `${tagGet} req/s`), m('distribution proxy', `${tagGet} req/s`)),
      },
      {
        target: 'warm manifest GET by tag (mirror) ≥ 1.5× the node file server reading the manifest per request',
        holds: m('ferry mirror', `${tagGet} req/s`) >= 1.5 * m('node file server', `${tagGet} req/s`),
        measured: ratio(m('ferry mirror', `${tagGet} req/s`), m('node file server', `${tagGet} req/s`)),
      },
      {
        target: 'manifest GET by tag p99 < 15 ms at 64 connections (ferry and ferry mirror)',
        holds: Math.max(m('ferry', `${tagGet} p99`), m('ferry mirror', `${tagGet} p99`)) < 15,
        measured: `${fmt(m('ferry', `${tagGet} p99`), 1)} / ${fmt(m('ferry mirror', `${tagGet} p99`), 1)} ms`,
      },
      {
        target: '`GET /v2/` ≥ 50 % of a bare node:http server (ferry and ferry mirror)',
        holds: best(`${base} req/s`) >= 0.5 * m('node file server', `${base} req/s`),
        measured: `${ratio(m('ferry', `${base} req/s`), m('node file server', `${base} req/s`))} / ${ratio(m('ferry mirror', `${base} req/s`), m('node file server', `${base} req/s`))}`,
      },
      { target: 'no upstream call inside the tag TTL', holds: mirrorCalls === 0, measured: `${mirrorCalls} upstream requests` },
    ]
    return {
      markdown: `${throughput}\n\n${latency}\n\n${cpu}\n\n${upstreamNote}`,
      checks,
      json: { samples: samples.toJSON(), mirrorUpstreamCalls: mirrorCalls, failed: bad },
    }
  },
}
