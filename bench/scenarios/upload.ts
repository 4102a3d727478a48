// Scenario 5: pushing one big blob into Ferry and into distribution: monolithic (POST, then one
// PUT ?digest= carrying the bytes) and chunked (PATCHes of 64 MiB with Content-Range, then PUT
// ?digest=). Each round starts each registry afresh on empty storage, so nothing is deduplicated
// and the RSS is that of a new process. Measured: MB/s, CPU seconds, peak RSS over the idle RSS.
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { readRss } from '../../test/helpers/rss-sampler.js'
import { randomBlob, randomBlobDigest, randomChunks } from '../lib/blobs.js'
import { pushChunked, pushMonolithic } from '../lib/http.js'
import { startDistribution, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, GiB, MB, measured, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/upload'

export const upload: Scenario = {
  name: 'upload',
  title: '5. Blob upload',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const size = s.uploadBytes
    progress(`upload: hashing two ${size / MiB} MiB blobs`)
    const mono = { seed: 'upload-monolithic', digest: await randomBlobDigest('upload-monolithic', size) }
    const chunked = { seed: 'upload-chunked', digest: await randomBlobDigest('upload-chunked', size) }
    const starters: Array<{ name: string; start: (dir: string) => Promise<Server> }> = [
      { name: 'ferry', start: (dir) => startFerry({ name: 'ferry', dir }) },
      { name: 'distribution', start: (dir) => startDistribution({ name: 'distribution', dir }) },
    ]
    const samples = new Samples()
    for (let round = 0; round < s.rounds; round++) {
      for (const starter of alternate(starters, round)) {
        progress(`upload: round ${round + 1}/${s.rounds}: ${starter.name}`)
        let attempt = 0
        // Each (re)measurement on a new process with empty storage.
        const r = await quietly(`${starter.name} upload`, async () => {
          const dir = join(ctx.dir, `${starter.name}-${round}-${attempt++}`)
          const server = await starter.start(dir)
          try {
            const idle = (readRss(server.pid) ?? Number.NaN) / MiB
            const started1 = performance.now()
            const one = await measured(server.pid, () => pushMonolithic(server, repo, mono.digest, size, () => randomBlob(mono.seed, size)))
            const monoSeconds = (performance.now() - started1) / 1000
            const started2 = performance.now()
            const two = await measured(server.pid, () =>
              pushChunked(server, repo, chunked.digest, size, s.uploadChunkBytes, randomChunks(chunked.seed)),
            )
            const chunkedSeconds = (performance.now() - started2) / 1000
            return { idle, one, two, monoSeconds, chunkedSeconds }
          } finally {
            await server.stop()
            await rm(dir, { recursive: true, force: true })
          }
        })
        samples.add(starter.name, 'idle rss MiB', r.idle)
        samples.add(starter.name, 'monolithic MB/s', size / MB / r.monoSeconds)
        samples.add(starter.name, 'monolithic cpu s/GiB', r.one.cpuSeconds / (size / GiB))
        samples.add(starter.name, 'monolithic rss MiB', r.one.peakRssBytes / MiB)
        samples.add(starter.name, 'chunked MB/s', size / MB / r.chunkedSeconds)
        samples.add(starter.name, 'chunked cpu s/GiB', r.two.cpuSeconds / (size / GiB))
        samples.add(starter.name, 'chunked rss MiB', r.two.peakRssBytes / MiB)
      }
    }
    const names = starters.map((x) => x.name)
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const row = (title: string, metric: string, digits: number): string[] => [
      title,
      ...names.map((n) => fmt(m(n, metric), digits)),
      ratio(m('ferry', metric), m('distribution', metric)),
    ]
    const blob = `${fmt(size / MiB)} MiB`
    const markdown = table(
      [`upload of one ${blob} blob (median)`, ...names, 'ferry / distribution'],
      [
        row('monolithic MB/s', 'monolithic MB/s', 0),
        row(`chunked (${fmt(s.uploadChunkBytes / MiB)} MiB PATCHes) MB/s`, 'chunked MB/s', 0),
        row('server CPU s per GiB, monolithic', 'monolithic cpu s/GiB', 2),
        row('server CPU s per GiB, chunked', 'chunked cpu s/GiB', 2),
        row('server RSS MiB, idle before the upload', 'idle rss MiB', 0),
        row('server peak RSS MiB, monolithic', 'monolithic rss MiB', 0),
        row('server peak RSS MiB, chunked', 'chunked rss MiB', 0),
      ],
    )
    const growth = Math.max(m('ferry', 'monolithic rss MiB'), m('ferry', 'chunked rss MiB')) - m('ferry', 'idle rss MiB')
    const checks = [
      {
        target: 'blob upload ≥ 1.0× distribution (monolithic and chunked)',
        holds:
          m('ferry', 'monolithic MB/s') >= m('distribution', 'monolithic MB/s') &&
          m('ferry', 'chunked MB/s') >= m('distribution', 'chunked MB/s'),
        measured: `${ratio(m('ferry', 'monolithic MB/s'), m('distribution', 'monolithic MB/s'))} / ${ratio(m('ferry', 'chunked MB/s'), m('distribution', 'chunked MB/s'))}`,
      },
      {
        // "Flat": the upload costs a bounded buffer, not memory in proportion to the blob.
        target: 'upload memory flat (peak RSS − idle RSS ≤ 64 MiB)',
        holds: growth <= 64,
        measured: `+${fmt(growth)} MiB over ${fmt(m('ferry', 'idle rss MiB'))} MiB idle`,
      },
    ]
    return { markdown, checks, json: samples.toJSON() }
  },
}
