// Scenario 6: one client, one cold blob through the mirror, next to distribution's proxy
// (`proxy.remoteurl`), both in front of one seeded distribution upstream (issue #18). This is the
// pull a pod start waits for: the bytes should reach the client as they arrive from the upstream,
// not after the disk has them. Every round uses a blob neither target has seen. The clock starts
// when the (already spawned) curl is given its URL, so process start-up is not in the figure.
import { join } from 'node:path'
import { randomBlob } from '../lib/blobs.js'
import { concurrentDownloads, pushStreaming } from '../lib/http.js'
import { startDistribution, startFerry } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, MB, measured, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/cold'

export const coldSingle: Scenario = {
  name: 'cold',
  title: '6. One client, cold blob through the mirror',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const size = s.fanoutBlobBytes
    const upstream = await startDistribution({ name: 'upstream', dir: join(ctx.dir, 'upstream') })
    const mirror = await startFerry({ name: 'ferry mirror', dir: join(ctx.dir, 'ferry-mirror'), upstream: upstream.url })
    const proxy = await startDistribution({ name: 'distribution proxy', dir: join(ctx.dir, 'distribution-proxy'), proxyOf: upstream.url })
    const warm = await pushStreaming(upstream, repo, randomBlob('cold-warmup', 4 * MiB))
    for (const target of [mirror, proxy]) await concurrentDownloads(target, [`/v2/${repo}/blobs/${warm}`], 1, 4 * MiB)

    const samples = new Samples()
    let blobs = 0
    for (let round = 0; round < s.rounds; round++) {
      for (const target of alternate([mirror, proxy], round)) {
        progress(`cold: round ${round + 1}/${s.rounds}: ${target.name}`)
        const result = await quietly(`${target.name} cold pull`, async () => {
          const digest = await pushStreaming(upstream, repo, randomBlob(`cold-${blobs++}`, size))
          return measured(target.pid, () => concurrentDownloads(target, [`/v2/${repo}/blobs/${digest}`], 1, size, { together: true }))
        })
        samples.add(target.name, 'cold s', result.value.seconds)
        samples.add(target.name, 'cold MB/s', result.value.bytes / MB / result.value.seconds)
        samples.add(target.name, 'first byte ms', result.value.slowestOwnFirstByteMs)
        samples.add(target.name, 'rss MiB', result.peakRssBytes / MiB)
        samples.add(target.name, 'cpu s', result.cpuSeconds)
      }
    }
    for (const server of [proxy, mirror, upstream]) await server.stop()

    const names = [mirror.name, proxy.name]
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const row = (title: string, metric: string, digits: number): string[] => [
      title,
      ...names.map((n) => fmt(m(n, metric), digits)),
      ratio(m(names[0]!, metric), m(names[1]!, metric)),
    ]
    const markdown = table(
      [`1 client × one cold ${fmt(size / MiB)} MiB blob (median)`, ...names, 'ferry mirror / distribution proxy'],
      [
        row('wall s', 'cold s', 2),
        row('MB/s', 'cold MB/s', 0),
        row('time to first byte, ms', 'first byte ms', 0),
        row('server peak RSS MiB', 'rss MiB', 0),
        row('server CPU s', 'cpu s', 2),
      ],
    )
    const speed = m(names[0]!, 'cold MB/s') / m(names[1]!, 'cold MB/s')
    const checks = [
      {
        target: 'one cold client ≥ 1.0× distribution proxy (issue #18)',
        holds: speed >= 1,
        measured: `${fmt(speed, 2)}× (${fmt(m(names[0]!, 'cold MB/s'))} vs ${fmt(m(names[1]!, 'cold MB/s'))} MB/s)`,
      },
      {
        target: 'peak RSS ≤ 150 MiB in a cold fill',
        holds: m(names[0]!, 'rss MiB') <= 150,
        measured: `${fmt(m(names[0]!, 'rss MiB'))} MiB`,
      },
    ]
    return { markdown, checks, json: samples.toJSON() }
  },
}
