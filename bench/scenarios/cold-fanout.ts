// Scenario 3 (and 4, second half): cold fan-out. 32 clients ask for the same uncached blob at
// once, through Ferry's mirror and through distribution's proxy, both in front of one seeded
// distribution upstream; then the same fan-out again, now cached. Every round uses a blob neither
// has seen. Measured: cold wall time relative to the cached fan-out, upstream fetches of the blob
// (from the upstream's access log), time to first byte of the last client, the server's peak RSS.
// The clients start together (spawned first, released at once), so the spread of their first
// bytes is the server's, not the time it takes to spawn 32 processes.
// (This replaces the former bench/cold-fanout.ts script.)
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBlob } from '../lib/blobs.js'
import { concurrentDownloads, pushStreaming } from '../lib/http.js'
import { startDistribution, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, MB, measured, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/fanout'

function upstreamFetches(upstream: Server, digest: string): number {
  return upstream.accessLog().filter((r) => r.method === 'GET' && r.path.split('?')[0]!.endsWith(`/blobs/${digest}`)).length
}

export const coldFanout: Scenario = {
  name: 'fanout',
  title: '3. Cold fan-out through the mirror (and 4. peak RSS)',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const upstream = await startDistribution({ name: 'upstream', dir: join(ctx.dir, 'upstream') })
    const mirror = await startFerry({ name: 'ferry mirror', dir: join(ctx.dir, 'ferry-mirror'), upstream: upstream.url })
    const proxy = await startDistribution({ name: 'distribution proxy', dir: join(ctx.dir, 'distribution-proxy'), proxyOf: upstream.url })
    // One fresh blob per round (each target sees every blob cold exactly once).
    const digests: string[] = []
    for (let round = 0; round < s.rounds; round++) {
      progress(`fanout: seeding upstream blob ${round + 1}/${s.rounds} (${s.fanoutBlobBytes / MiB} MiB)`)
      digests.push(await pushStreaming(upstream, repo, randomBlob(`fanout-${round}`, s.fanoutBlobBytes)))
    }
    // Warm-up on a small blob: JIT and upstream connections, outside the measurements.
    const warm = await pushStreaming(upstream, repo, randomBlob('fanout-warmup', 4 * MiB))
    for (const target of [mirror, proxy]) await concurrentDownloads(target, [`/v2/${repo}/blobs/${warm}`], 4, 4 * MiB)
    await sleep(500)

    const samples = new Samples()
    let spare = 0
    for (let round = 0; round < s.rounds; round++) {
      for (const target of alternate([mirror, proxy], round)) {
        progress(`fanout: round ${round + 1}/${s.rounds}: ${target.name}`)
        let attempt = 0
        const { cold, cached, fetches, afterCached } = await quietly(`${target.name} fan-out`, async () => {
          // A repeated measurement needs a blob this target has not seen yet.
          const digest =
            attempt++ === 0
              ? digests[round]!
              : await pushStreaming(upstream, repo, randomBlob(`fanout-spare-${spare++}`, s.fanoutBlobBytes))
          const path = `/v2/${repo}/blobs/${digest}`
          const before = upstreamFetches(upstream, digest)
          const cold = await measured(target.pid, () =>
            concurrentDownloads(target, [path], s.fanoutClients, s.fanoutBlobBytes, { together: true }),
          )
          // Let a proxy finish committing what it streamed before the cached run.
          await sleep(1_000)
          const fetches = upstreamFetches(upstream, digest) - before
          const cached = await measured(target.pid, () =>
            concurrentDownloads(target, [path], s.fanoutClients, s.fanoutBlobBytes, { together: true }),
          )
          return { cold, cached, fetches, afterCached: upstreamFetches(upstream, digest) - before }
        })
        samples.add(target.name, 'cold s', cold.value.seconds)
        samples.add(target.name, 'cached s', cached.value.seconds)
        samples.add(target.name, 'cold/cached', cold.value.seconds / cached.value.seconds)
        samples.add(target.name, 'cold MB/s', cold.value.bytes / MB / cold.value.seconds)
        samples.add(target.name, 'cached MB/s', cached.value.bytes / MB / cached.value.seconds)
        samples.add(target.name, 'last first byte ms', cold.value.lastFirstByteMs)
        samples.add(target.name, 'first byte spread ms', cold.value.lastFirstByteMs - cold.value.firstFirstByteMs)
        samples.add(target.name, 'slowest own first byte ms', cold.value.slowestOwnFirstByteMs)
        samples.add(target.name, 'cached last first byte ms', cached.value.lastFirstByteMs)
        samples.add(target.name, 'upstream fetches', fetches)
        samples.add(target.name, 'upstream fetches incl. cached run', afterCached)
        samples.add(target.name, 'cold rss MiB', cold.peakRssBytes / MiB)
        samples.add(target.name, 'cached rss MiB', cached.peakRssBytes / MiB)
        samples.add(target.name, 'cold cpu s', cold.cpuSeconds)
      }
    }
    for (const server of [proxy, mirror, upstream]) await server.stop()

    const names = [mirror.name, proxy.name]
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const max = (name: string, metric: string): number => Math.max(...samples.values(name, metric))
    const row = (title: string, metric: string, digits: number): string[] => [
      title,
      ...names.map((n) => fmt(m(n, metric), digits)),
      ratio(m(names[0]!, metric), m(names[1]!, metric)),
    ]
    const blob = `${s.fanoutClients} clients × one ${fmt(s.fanoutBlobBytes / MiB)} MiB blob`
    const markdown = table(
      [`${blob} (median)`, ...names, 'ferry mirror / distribution proxy'],
      [
        row('cold wall s', 'cold s', 2),
        row('cached wall s', 'cached s', 2),
        row('cold / cached', 'cold/cached', 2),
        row('cold aggregate MB/s', 'cold MB/s', 0),
        row('cached aggregate MB/s', 'cached MB/s', 0),
        row('time to first byte of the last client, cold, ms', 'last first byte ms', 0),
        row("last client's first byte after the first client's, cold, ms", 'first byte spread ms', 0),
        row('longest wait for a first byte after curl started, cold, ms', 'slowest own first byte ms', 0),
        row('upstream fetches of the blob (cold run)', 'upstream fetches', 0),
        row('server peak RSS MiB, cold', 'cold rss MiB', 0),
        row('server peak RSS MiB, cached', 'cached rss MiB', 0),
        row('server CPU s, cold fan-out', 'cold cpu s', 2),
      ],
    )
    const fetchesMax = max(names[0]!, 'upstream fetches incl. cached run')
    const fetchesMin = Math.min(...samples.values(names[0]!, 'upstream fetches'))
    const checks = [
      {
        target: 'cold fan-out: exactly 1 upstream fetch (every round)',
        holds: fetchesMax === 1 && fetchesMin === 1,
        measured: `${fetchesMin}–${fetchesMax} per round (distribution proxy: ${fmt(m(names[1]!, 'upstream fetches'))})`,
      },
      {
        target: `cold fan-out of ${s.fanoutClients} within 1.2× the cached fan-out`,
        holds: m(names[0]!, 'cold/cached') <= 1.2,
        measured: `${fmt(m(names[0]!, 'cold/cached'), 2)}× (distribution proxy: ${fmt(m(names[1]!, 'cold/cached'), 2)}×)`,
      },
      {
        target: "cold fan-out: the last client's first byte within 100 ms of the first's (#18)",
        holds: m(names[0]!, 'first byte spread ms') <= 100,
        measured: `${fmt(m(names[0]!, 'first byte spread ms'))} ms (longest wait after curl started: ${fmt(m(names[0]!, 'slowest own first byte ms'))} ms)`,
      },
      {
        target: 'peak RSS ≤ 150 MiB in the fan-out',
        holds: Math.max(m(names[0]!, 'cold rss MiB'), m(names[0]!, 'cached rss MiB')) <= 150,
        measured: `${fmt(m(names[0]!, 'cold rss MiB'))} MiB cold, ${fmt(m(names[0]!, 'cached rss MiB'))} MiB cached`,
      },
    ]
    return { markdown, checks, json: samples.toJSON() }
  },
}
