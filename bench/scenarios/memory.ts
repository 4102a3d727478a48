// Scenario 8: memory over a run (issue #18). One Ferry mirror in front of a seeded distribution,
// its RSS sampled every 250 ms (lib/rss-timeline.ts) through: idle after start, one cold fill
// (1 client), a 32-client cold fan-out on another blob, 16 cached downloads, then 30 s idle.
// Reported: RSS at start, before the fills, peak, and 30 s after the last fill (target: back to
// ≤ 1.3× its pre-fill level). Written to bench/results/rss-timeline.{json,svg}.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomBlob } from '../lib/blobs.js'
import { concurrentDownloads, pushStreaming } from '../lib/http.js'
import { projectRoot, startDistribution, startFerry } from '../lib/processes.js'
import { RssTimeline } from '../lib/rss-timeline.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { fmt, MiB, progress, table } from '../lib/stats.js'

const repo = 'bench/memory'

export const memory: Scenario = {
  name: 'memory',
  title: '8. Memory over a run (RSS every 250 ms)',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const size = s.fanoutBlobBytes
    const upstream = await startDistribution({ name: 'upstream', dir: join(ctx.dir, 'upstream') })
    const digests: string[] = []
    for (const name of ['memory-cold', 'memory-fanout']) digests.push(await pushStreaming(upstream, repo, randomBlob(name, size)))
    const mirror = await startFerry({ name: 'ferry mirror', dir: join(ctx.dir, 'ferry-mirror'), upstream: upstream.url })
    const timeline = new RssTimeline(mirror.pid)
    timeline.phase('started')
    await sleep(3_000)
    const atStart = timeline.latest()
    const path = (digest: string): string => `/v2/${repo}/blobs/${digest}`
    progress('memory: one cold fill')
    timeline.phase('cold fill')
    await concurrentDownloads(mirror, [path(digests[0]!)], 1, size)
    await sleep(2_000)
    timeline.phase('32-client cold fan-out')
    progress('memory: cold fan-out')
    await concurrentDownloads(mirror, [path(digests[1]!)], s.fanoutClients, size)
    timeline.phase('16 cached downloads')
    progress('memory: 16 cached downloads')
    await concurrentDownloads(mirror, [path(digests[0]!), path(digests[1]!)], 16, size)
    const lastFill = timeline.now()
    timeline.phase('idle')
    progress('memory: 30 s idle')
    await sleep(30_000)
    timeline.stop()
    await mirror.stop()
    await upstream.stop()
    const preFill = timeline.peak(0, timeline.phases[1]!.start)
    const peak = timeline.peak()
    const after = timeline.latest()
    const afterAt = timeline.now() - lastFill
    const results = join(projectRoot, 'bench', 'results')
    await mkdir(results, { recursive: true }) // absent in a fresh checkout run with BENCH_RESULTS elsewhere
    await timeline.write(
      join(results, 'rss-timeline.json'),
      join(results, 'rss-timeline.svg'),
      `Ferry mirror RSS, ${fmt(size / MiB)} MiB blobs`,
    )
    const markdown = table(
      ['ferry mirror RSS, MiB', 'value'],
      [
        ['idle after start', fmt(atStart)],
        ['before the fills (highest)', fmt(preFill)],
        ['peak (cold fill, fan-out, cached downloads)', fmt(peak)],
        [`${fmt(afterAt)} s after the last download`, `${fmt(after)} (${fmt(after / preFill, 2)}× before)`],
      ],
    )
    const checks = [
      { target: 'RSS at start ≤ 60 MiB (#18)', holds: atStart <= 60, measured: `${fmt(atStart)} MiB` },
      { target: 'peak RSS ≤ 150 MiB over fills and downloads (#18)', holds: peak <= 150, measured: `${fmt(peak)} MiB` },
      {
        target: 'RSS back to ≤ 1.3× its pre-fill level within 30 s (#18)',
        holds: after <= 1.3 * preFill,
        measured: `${fmt(after / preFill, 2)}× (${fmt(after)} vs ${fmt(preFill)} MiB)`,
      },
    ]
    return {
      markdown: `${markdown}\n\nTimeline: bench/results/rss-timeline.json, drawn in bench/results/rss-timeline.svg.`,
      checks,
      json: { samples: timeline.samples, phases: timeline.phases },
    }
  },
}
