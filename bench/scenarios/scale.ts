// Scenario 13: how Ferry's cost grows with the size of the work (issue #18). Three series, each on
// Ferry alone (the other scenarios compare it with distribution):
//   tags: a warm manifest GET by tag at 64 connections, each request naming a random one of 1k,
//     10k and 100k tags (BENCH_SCALE_TAGS) of one repository: req/s, p99, the server's RSS idle
//     and at its peak. The tags are stored ones (one small image under N tags), so the series shows
//     what the number of tags costs Ferry's metadata caches and storage reads, not the mirror's
//     upstream;
//   clients: cached blob downloads by 1, 16 and 256 concurrent curl processes (each a
//     BENCH_SCALE_BLOB_MIB blob, 16 distinct blobs): aggregate MB/s, CPU s per GiB, peak RSS;
//   fan-out: 8, 32 and 128 clients at once on one uncached blob through the mirror (a new blob
//     each time), then the same again cached: wall times, their ratio, upstream fetches, peak RSS.
// Each point is the median of the rounds (at most 3).
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { mediaTypes } from '../../src/core/media-types.js'
import { randomBlob } from '../lib/blobs.js'
import { concurrentDownloads, pushStreaming } from '../lib/http.js'
import { pushImage, smallImage } from '../lib/images.js'
import { startDistribution, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { fmt, GiB, MB, measured, MiB, progress, Samples, table } from '../lib/stats.js'
import { readRss } from '../../test/helpers/rss-sampler.js'

const repo = 'bench/scale'
const tagAccept = [mediaTypes.dockerManifest, mediaTypes.dockerManifestList, mediaTypes.ociManifest, mediaTypes.ociIndex, '*/*'].join(', ')

function list(name: string, fallback: number[]): number[] {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const values = raw.split(',').map(Number)
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`${name} must be a comma-separated list of positive integers`)
  return values
}

/** Runs `work(i)` for i in [from, to) with `concurrency` in flight. */
async function pool(from: number, to: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = from
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < to) await work(next++)
    }),
  )
}

async function tagSeries(ctx: BenchContext, rounds: number, samples: Samples): Promise<number[]> {
  const s = ctx.settings
  const counts = list('BENCH_SCALE_TAGS', s.quick ? [1_000, 10_000] : [1_000, 10_000, 100_000])
  const ferry = await startFerry({ name: 'ferry', dir: join(ctx.dir, 'ferry-tags') })
  const image = smallImage('scale-image')
  await pushImage(ferry, repo, 'tag-0', image)
  const tags = join(ctx.dir, 'ferry-tags', 'storage', 'repositories', ...repo.split('/'), '_manifests', 'tags')
  const link = await readFile(join(tags, 'tag-0', 'link'))
  let pushed = 1
  for (const count of counts) {
    progress(`scale: tagging ${count} tags`)
    // Written as tag links beside the first, pushed one: 100k manifest PUTs take ~20 min on a
    // loaded 2-core machine, 100k small files a few seconds. Reads find them like pushed tags
    // (only the tag listing's index, not measured here, would miss them).
    await pool(pushed, count, 16, async (i) => {
      await mkdir(join(tags, `tag-${i}`), { recursive: true })
      await writeFile(join(tags, `tag-${i}`, 'link'), link)
    })
    pushed = Math.max(pushed, count)
    const load = (seconds: number) =>
      autocannon({
        url: ferry.url,
        connections: s.manifestConnections,
        duration: seconds,
        headers: { ...ferry.headers, accept: tagAccept },
        requests: [
          { method: 'GET', setupRequest: (req) => ({ ...req, path: `/v2/${repo}/manifests/tag-${Math.floor(Math.random() * count)}` }) },
        ],
      })
    await load(1)
    for (let round = 0; round < rounds; round++) {
      progress(`scale: ${count} tags, round ${round + 1}/${rounds}`)
      const r = await quietly(`scale ${count} tags`, () => measured(ferry.pid, () => load(s.manifestSeconds)))
      // Counted, not fatal: a failure at some scale is a finding (the server's log says which).
      samples.add(`${count} tags`, 'failed', r.value.non2xx + r.value.errors + r.value.timeouts)
      samples.add(`${count} tags`, 'req/s', r.value.requests.total / r.value.duration)
      samples.add(`${count} tags`, 'p99 ms', r.value.latency.p99)
      samples.add(`${count} tags`, 'peak rss MiB', r.peakRssBytes / MiB)
      samples.add(`${count} tags`, 'cpu ms/1000', (r.cpuSeconds * 1e6) / r.value.requests.total)
    }
    samples.add(`${count} tags`, 'idle rss MiB', (readRss(ferry.pid) ?? Number.NaN) / MiB)
  }
  await ferry.stop()
  return counts
}

async function clientSeries(ctx: BenchContext, rounds: number, samples: Samples): Promise<{ counts: number[]; size: number }> {
  const counts = list('BENCH_SCALE_CLIENTS', [1, 16, 256])
  const size = Number(process.env.BENCH_SCALE_BLOB_MIB ?? (ctx.settings.quick ? 4 : 16)) * MiB
  const ferry = await startFerry({ name: 'ferry', dir: join(ctx.dir, 'ferry-clients') })
  const paths: string[] = []
  for (let i = 0; i < 16; i++) paths.push(`/v2/${repo}/blobs/${await pushStreaming(ferry, repo, randomBlob(`scale-${i}`, size))}`)
  await concurrentDownloads(ferry, paths, 16, size)
  for (let round = 0; round < rounds; round++) {
    for (const clients of counts) {
      progress(`scale: ${clients} clients, round ${round + 1}/${rounds}`)
      const r = await quietly(`scale ${clients} clients`, () => measured(ferry.pid, () => concurrentDownloads(ferry, paths, clients, size)))
      samples.add(`${clients} clients`, 'MB/s', r.value.bytes / MB / r.value.seconds)
      samples.add(`${clients} clients`, 'cpu s/GiB', r.cpuSeconds / (r.value.bytes / GiB))
      samples.add(`${clients} clients`, 'peak rss MiB', r.peakRssBytes / MiB)
    }
  }
  await ferry.stop()
  return { counts, size }
}

function upstreamFetches(upstream: Server, digest: string): number {
  return upstream.accessLog().filter((r) => r.method === 'GET' && r.path.split('?')[0]!.endsWith(`/blobs/${digest}`)).length
}

async function fanoutSeries(ctx: BenchContext, rounds: number, samples: Samples): Promise<{ counts: number[]; size: number }> {
  const counts = list('BENCH_SCALE_FANOUT', [8, 32, 128])
  const size = ctx.settings.fanoutBlobBytes
  const upstream = await startDistribution({ name: 'upstream', dir: join(ctx.dir, 'upstream') })
  const mirror = await startFerry({ name: 'ferry mirror', dir: join(ctx.dir, 'ferry-mirror'), upstream: upstream.url })
  const warm = await pushStreaming(upstream, repo, randomBlob('scale-warmup', 4 * MiB))
  await concurrentDownloads(mirror, [`/v2/${repo}/blobs/${warm}`], 4, 4 * MiB)
  let blobs = 0
  for (let round = 0; round < rounds; round++) {
    for (const clients of counts) {
      progress(`scale: fan-out of ${clients}, round ${round + 1}/${rounds}`)
      const r = await quietly(`scale fan-out ${clients}`, async () => {
        const digest = await pushStreaming(upstream, repo, randomBlob(`scale-fanout-${blobs++}`, size))
        const path = `/v2/${repo}/blobs/${digest}`
        const cold = await measured(mirror.pid, () => concurrentDownloads(mirror, [path], clients, size))
        const fetches = upstreamFetches(upstream, digest)
        const cached = await measured(mirror.pid, () => concurrentDownloads(mirror, [path], clients, size))
        return { cold, cached, fetches }
      })
      const key = `${clients} clients`
      samples.add(key, 'cold s', r.cold.value.seconds)
      samples.add(key, 'cached s', r.cached.value.seconds)
      samples.add(key, 'cold / cached', r.cold.value.seconds / r.cached.value.seconds)
      samples.add(key, 'fetches', r.fetches)
      samples.add(key, 'first byte spread ms', r.cold.value.lastFirstByteMs - r.cold.value.firstFirstByteMs)
      samples.add(key, 'peak rss MiB', Math.max(r.cold.peakRssBytes, r.cached.peakRssBytes) / MiB)
    }
  }
  for (const server of [mirror, upstream]) await server.stop()
  return { counts, size }
}

export const scale: Scenario = {
  name: 'scale',
  title: '13. Scale of work: tags, concurrent clients, fan-out',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const rounds = Math.min(ctx.settings.rounds, 3)
    const tags = new Samples()
    const clients = new Samples()
    const fanout = new Samples()
    const tagCounts = await tagSeries(ctx, rounds, tags)
    const downloads = await clientSeries(ctx, rounds, clients)
    const fan = await fanoutSeries(ctx, rounds, fanout)
    const markdown = [
      table(
        [
          'cached tags (median)',
          'GET by tag req/s',
          'p99 ms',
          'server CPU ms per 1,000',
          'RSS idle after, MiB',
          'peak RSS MiB',
          'failed requests',
        ],
        tagCounts.map((count) => {
          const k = `${count} tags`
          return [
            fmt(count),
            fmt(tags.median(k, 'req/s')),
            fmt(tags.median(k, 'p99 ms'), 1),
            fmt(tags.median(k, 'cpu ms/1000')),
            fmt(tags.median(k, 'idle rss MiB')),
            fmt(tags.median(k, 'peak rss MiB')),
            fmt(tags.values(k, 'failed').reduce((a, b) => a + b, 0)),
          ]
        }),
      ),
      '',
      table(
        [`concurrent clients, ${fmt(downloads.size / MiB)} MiB each (median)`, 'aggregate MB/s', 'CPU s per GiB', 'peak RSS MiB'],
        downloads.counts.map((count) => {
          const k = `${count} clients`
          return [
            fmt(count),
            fmt(clients.median(k, 'MB/s')),
            fmt(clients.median(k, 'cpu s/GiB'), 2),
            fmt(clients.median(k, 'peak rss MiB')),
          ]
        }),
      ),
      '',
      table(
        [
          `fan-out on one ${fmt(fan.size / MiB)} MiB blob (median)`,
          'cold wall s',
          'cached wall s',
          'cold / cached',
          'upstream fetches',
          'first-byte spread ms',
          'peak RSS MiB',
        ],
        fan.counts.map((count) => {
          const k = `${count} clients`
          return [
            fmt(count),
            fmt(fanout.median(k, 'cold s'), 2),
            fmt(fanout.median(k, 'cached s'), 2),
            fmt(fanout.median(k, 'cold / cached'), 2),
            fmt(Math.max(...fanout.values(k, 'fetches'))),
            fmt(fanout.median(k, 'first byte spread ms')),
            fmt(fanout.median(k, 'peak rss MiB')),
          ]
        }),
      ),
    ].join('\n')
    const fetches = fan.counts.flatMap((count) => fanout.values(`${count} clients`, 'fetches'))
    const checks = [
      {
        target: 'fan-out of 8, 32 and 128 clients: 1 upstream fetch each',
        holds: fetches.every((f) => f === 1),
        measured: `at most ${fmt(Math.max(...fetches))} fetches`,
      },
    ]
    return { markdown, checks, json: { tags: tags.toJSON(), clients: clients.toJSON(), fanout: fanout.toJSON() } }
  },
}
