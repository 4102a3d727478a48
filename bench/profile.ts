// Profiles Ferry under one benchmark load: `npx tsx bench/profile.ts <case> [out-dir]`.
// Content is seeded by an unprofiled Ferry first; then a Ferry started with
// `node --cpu-prof` on the same storage serves only the load, so the profile holds nothing else.
// Prints the top functions (bench/profile-summary.ts) and leaves the .cpuprofile in out-dir
// (open it in Chrome DevTools or speedscope for a flame graph).
// Cases: blob (1 client, 1 GiB, 3×), blob16 (16 clients × 64 MiB, 3×), manifest-tag (GET by tag,
// 64 connections, 10 s), mirror-tag (the same through the mirror), fanout (32 cold clients on
// one 256 MiB blob), upload (1 GiB monolithic). BENCH_QUICK=1 shrinks the blobs as for run.ts.
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { mediaTypes } from '../src/core/media-types.js'
import { randomBlob, randomBlobDigest } from './lib/blobs.js'
import { concurrentDownloads, pushMonolithic, pushStreaming } from './lib/http.js'
import { pushImage, smallImage } from './lib/images.js'
import { ensureAccess, startDistribution, startFerry, stopAll, type Server } from './lib/processes.js'
import { loadSettings } from './lib/settings.js'
import { MB, MiB, progress } from './lib/stats.js'

const cases = ['blob', 'blob16', 'manifest-tag', 'mirror-tag', 'fanout', 'upload'] as const
type Case = (typeof cases)[number]
const which = process.argv[2] as Case | undefined
if (!which || !cases.includes(which)) {
  console.error(`usage: tsx bench/profile.ts <${cases.join('|')}> [out-dir]`)
  process.exit(2)
}
const outDir = resolve(process.argv[3] ?? join(tmpdir(), `ferry-profile-${which}`))
await mkdir(outDir, { recursive: true })
const s = loadSettings()
const dir = await mkdtemp(join(tmpdir(), 'ferry-profile-'))
const repo = 'bench/profile'
const tagAccept = [mediaTypes.dockerManifest, mediaTypes.dockerManifestList, mediaTypes.ociManifest, mediaTypes.ociIndex, '*/*'].join(', ')

async function timed(label: string, bytes: number, fn: () => Promise<unknown>): Promise<void> {
  const t0 = performance.now()
  await fn()
  const seconds = (performance.now() - t0) / 1000
  progress(`${label}: ${seconds.toFixed(2)} s${bytes ? `, ${(bytes / MB / seconds).toFixed(0)} MB/s` : ''}`)
}

try {
  const ferryDir = join(dir, 'ferry')
  let upstream: Server | undefined
  let load: (ferry: Server) => Promise<void>
  if (which === 'blob' || which === 'blob16') {
    const clients = which === 'blob' ? 1 : s.concurrentClients
    const size = which === 'blob' ? s.singleBlobBytes : s.concurrentBlobBytes
    const seeder = await startFerry({ name: 'seeder', dir: ferryDir })
    const paths: string[] = []
    for (let i = 0; i < clients; i++) {
      const digest = await randomBlobDigest(`profile-${i}`, size)
      await pushMonolithic(seeder, repo, digest, size, () => randomBlob(`profile-${i}`, size))
      paths.push(`/v2/${repo}/blobs/${digest}`)
    }
    await seeder.stop()
    load = async (ferry) => {
      for (let i = 0; i < 3; i++)
        await timed(`${clients} × ${size / MiB} MiB`, clients * size, () => concurrentDownloads(ferry, paths, clients, size))
    }
  } else if (which === 'manifest-tag' || which === 'mirror-tag') {
    const image = smallImage('profile-image')
    if (which === 'mirror-tag') {
      upstream = await startDistribution({ name: 'upstream', dir: join(dir, 'upstream') })
      await pushImage(upstream, repo, 'v1', image)
    } else {
      const seeder = await startFerry({ name: 'seeder', dir: ferryDir })
      await pushImage(seeder, repo, 'v1', image)
      await seeder.stop()
    }
    load = async (ferry) => {
      await ensureAccess(ferry, `/v2/${repo}/manifests/v1`, 'GET', { accept: tagAccept })
      const result = await autocannon({
        url: `${ferry.url}/v2/${repo}/manifests/v1`,
        headers: { ...ferry.headers, accept: tagAccept },
        connections: s.manifestConnections,
        duration: 10,
      })
      progress(
        `GET by tag: ${(result.requests.total / result.duration).toFixed(0)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, non-2xx ${result.non2xx}`,
      )
    }
  } else if (which === 'fanout') {
    upstream = await startDistribution({ name: 'upstream', dir: join(dir, 'upstream') })
    const digest = await pushStreaming(upstream, repo, randomBlob('profile-fanout', s.fanoutBlobBytes))
    load = (ferry) =>
      timed(`cold fan-out ${s.fanoutClients} × ${s.fanoutBlobBytes / MiB} MiB`, s.fanoutClients * s.fanoutBlobBytes, () =>
        concurrentDownloads(ferry, [`/v2/${repo}/blobs/${digest}`], s.fanoutClients, s.fanoutBlobBytes),
      )
  } else {
    const digest = await randomBlobDigest('profile-upload', s.uploadBytes)
    load = (ferry) =>
      timed(`monolithic upload ${s.uploadBytes / MiB} MiB`, s.uploadBytes, () =>
        pushMonolithic(ferry, repo, digest, s.uploadBytes, () => randomBlob('profile-upload', s.uploadBytes)),
      )
  }
  const before = new Set(await readdir(outDir))
  const ferry = await startFerry({
    name: 'ferry',
    dir: ferryDir,
    cpuProfDir: outDir,
    ...(upstream ? { upstream: upstream.url, tagTtl: '1h' } : {}),
  })
  if (which === 'mirror-tag') {
    // Fill the mirror's cache first (tag and manifest), as in the benchmark's warm-up.
    await fetch(`${ferry.url}/v2/${repo}/manifests/v1`, { headers: { ...ferry.headers, accept: tagAccept } }).then((r) => r.arrayBuffer())
  }
  await load(ferry)
  await ferry.stop()
  await upstream?.stop()
  const fresh = (await readdir(outDir)).filter((f) => f.endsWith('.cpuprofile') && !before.has(f))
  const newest = (await Promise.all(fresh.map(async (f) => ({ f, t: (await stat(join(outDir, f))).mtimeMs })))).sort((a, b) => b.t - a.t)[0]
  if (!newest) throw new Error(`no .cpuprofile was written to ${outDir}`)
  const summary = fileURLToPath(new URL('./profile-summary.ts', import.meta.url))
  spawnSync(process.execPath, ['--import', 'tsx', summary, join(outDir, newest.f), '20'], { stdio: 'inherit' })
} finally {
  await stopAll()
  await rm(dir, { recursive: true, force: true })
}
