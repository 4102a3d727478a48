// Scenario 1 (and 4, first half): cached blob downloads. One client pulls one big blob; then 16
// clients pull 16 different blobs at once. Ferry (plain registry), distribution and the bare
// Node file server (1 MiB reads; and the naive 64 KiB pipe for reference) serve the same bytes.
// Measured: MB/s, the server's CPU seconds per GiB served (/proc/<pid>/stat) and its peak RSS.
import { createReadStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { concurrentDownloads, pushMonolithic } from '../lib/http.js'
import { startBaseline, startDistribution, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { writeRandomBlob } from '../lib/blobs.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, GiB, MB, measured, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/blobs'

interface Target {
  label: string
  server: Server
  /** Request path of the blob named `name` with digest `digest`. */
  path(name: string, digest: string): string
}

export const blobDownload: Scenario = {
  name: 'blobs',
  title: '1. Cached blob download (and 4. peak RSS)',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const files = join(ctx.dir, 'files')
    await mkdir(files, { recursive: true })
    progress(`blobs: writing ${s.singleBlobBytes / MiB} MiB + ${s.concurrentClients}×${s.concurrentBlobBytes / MiB} MiB of random blobs`)
    const blobs = [
      { name: 'single', size: s.singleBlobBytes, digest: await writeRandomBlob(join(files, 'single'), 'single', s.singleBlobBytes) },
    ]
    for (let i = 0; i < s.concurrentClients; i++) {
      const name = `concurrent-${i}`
      blobs.push({ name, size: s.concurrentBlobBytes, digest: await writeRandomBlob(join(files, name), name, s.concurrentBlobBytes) })
    }
    const [single, ...many] = blobs as [(typeof blobs)[0], ...typeof blobs]

    const ferry = await startFerry({ name: 'ferry', dir: join(ctx.dir, 'ferry') })
    const distribution = await startDistribution({ name: 'distribution', dir: join(ctx.dir, 'distribution') })
    const node = await startBaseline('node file server', files, join(ctx.dir, 'baseline'))
    for (const registry of [ferry, distribution]) {
      progress(`blobs: pushing ${blobs.length} blobs into ${registry.name}`)
      for (const blob of blobs)
        await pushMonolithic(registry, repo, blob.digest, blob.size, () => createReadStream(join(files, blob.name), { highWaterMark: MiB }))
    }
    const registryPath = (_name: string, digest: string): string => `/v2/${repo}/blobs/${digest}`
    const targets: Target[] = [
      { label: 'ferry', server: ferry, path: registryPath },
      { label: 'distribution', server: distribution, path: registryPath },
      { label: 'node 1 MiB reads', server: node, path: (name) => `/blobs/${name}` },
      { label: 'node pipe 64 KiB', server: node, path: (name) => `/blobs/${name}?chunk=65536` },
    ]
    // Warm-up (JIT, page cache): one concurrent-size blob each.
    for (const t of targets) await concurrentDownloads(t.server, [t.path(many[0]!.name, many[0]!.digest)], 1, many[0]!.size)

    const samples = new Samples()
    for (let round = 0; round < s.rounds; round++) {
      for (const t of alternate(targets, round)) {
        progress(`blobs: round ${round + 1}/${s.rounds}: ${t.label}`)
        const one = await quietly(`${t.label} 1 client`, () =>
          measured(t.server.pid, () => concurrentDownloads(t.server, [t.path(single.name, single.digest)], 1, single.size)),
        )
        samples.add(t.label, 'single MB/s', one.value.bytes / MB / one.value.seconds)
        samples.add(t.label, 'single cpu s/GiB', one.cpuSeconds / (one.value.bytes / GiB))
        samples.add(t.label, 'single rss MiB', one.peakRssBytes / MiB)
        const paths = many.map((b) => t.path(b.name, b.digest))
        const all = await quietly(`${t.label} ${s.concurrentClients} clients`, () =>
          measured(t.server.pid, () => concurrentDownloads(t.server, paths, s.concurrentClients, s.concurrentBlobBytes)),
        )
        samples.add(t.label, 'concurrent MB/s', all.value.bytes / MB / all.value.seconds)
        samples.add(t.label, 'concurrent cpu s/GiB', all.cpuSeconds / (all.value.bytes / GiB))
        samples.add(t.label, 'concurrent rss MiB', all.peakRssBytes / MiB)
      }
    }
    for (const server of [ferry, distribution, node]) await server.stop()

    const labels = targets.map((t) => t.label)
    const m = (label: string, metric: string): number => samples.median(label, metric)
    const row = (title: string, metric: string, digits: number): string[] => [
      title,
      ...labels.map((l) => fmt(m(l, metric), digits)),
      ratio(m('ferry', metric), m('distribution', metric)),
      ratio(m('ferry', metric), m('node 1 MiB reads', metric)),
    ]
    const singleSize = `${fmt(s.singleBlobBytes / MiB)} MiB`
    const concurrentSize = `${s.concurrentClients} × ${fmt(s.concurrentBlobBytes / MiB)} MiB`
    const markdown = table(
      ['metric (median)', ...labels, 'ferry / distribution', 'ferry / node'],
      [
        row(`1 client, ${singleSize}: MB/s`, 'single MB/s', 0),
        row(`${concurrentSize}: aggregate MB/s`, 'concurrent MB/s', 0),
        row('server CPU s per GiB, 1 client', 'single cpu s/GiB', 2),
        row(`server CPU s per GiB, ${s.concurrentClients} clients`, 'concurrent cpu s/GiB', 2),
        row('server peak RSS MiB, 1 client', 'single rss MiB', 0),
        row(`server peak RSS MiB, ${s.concurrentClients} clients`, 'concurrent rss MiB', 0),
      ],
    )
    const checks = [
      {
        target: 'cached blob, 1 client ≥ 1.0× node file server',
        holds: m('ferry', 'single MB/s') >= m('node 1 MiB reads', 'single MB/s'),
        measured: ratio(m('ferry', 'single MB/s'), m('node 1 MiB reads', 'single MB/s')),
      },
      {
        target: `cached blob, ${s.concurrentClients} clients ≥ 1.0× node file server`,
        holds: m('ferry', 'concurrent MB/s') >= m('node 1 MiB reads', 'concurrent MB/s'),
        measured: ratio(m('ferry', 'concurrent MB/s'), m('node 1 MiB reads', 'concurrent MB/s')),
      },
      {
        target: 'CPU per GiB ≤ node file server (1 and 16 clients)',
        holds:
          m('ferry', 'single cpu s/GiB') <= m('node 1 MiB reads', 'single cpu s/GiB') &&
          m('ferry', 'concurrent cpu s/GiB') <= m('node 1 MiB reads', 'concurrent cpu s/GiB'),
        measured: `${fmt(m('ferry', 'single cpu s/GiB'), 2)} / ${fmt(m('ferry', 'concurrent cpu s/GiB'), 2)} vs ${fmt(m('node 1 MiB reads', 'single cpu s/GiB'), 2)} / ${fmt(m('node 1 MiB reads', 'concurrent cpu s/GiB'), 2)} s/GiB`,
      },
      {
        target: `peak RSS ≤ 150 MiB with ${s.concurrentClients} concurrent downloads`,
        holds: m('ferry', 'concurrent rss MiB') <= 150,
        measured: `${fmt(m('ferry', 'concurrent rss MiB'))} MiB`,
      },
    ]
    return { markdown, checks, json: samples.toJSON() }
  },
}
