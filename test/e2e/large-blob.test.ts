// A large blob (1 GiB by default; FERRY_LARGE_BLOB_MIB) pushed to and pulled from Ferry running
// as its own process, monolithically and in 64 MiB chunks, generated and verified as streams on
// this side. The child's RSS is sampled throughout: Ferry must stream, never buffer, so its
// memory stays flat whatever the blob size. Figures go to t.comment and to
// bench/results/large-blob-latest.json; time is reported, never asserted. Ferry runs with
// `--htpasswd`: uploads carry Basic credentials (verified once, then from the cache), downloads
// are anonymous (`--anonymous-pull '**'`).
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { basic, writeHtpasswd } from '../helpers/htpasswd.js'
import { PseudoRandomSource, pseudoRandomDigest } from '../helpers/pseudo-random.js'
import { readCpuSeconds, readRss, sampleRss } from '../helpers/rss-sampler.js'

const MiB = 1024 * 1024
const sizeMiB = Number(process.env.FERRY_LARGE_BLOB_MIB ?? '1024')
if (!Number.isInteger(sizeMiB) || sizeMiB < 1)
  throw new Error(`FERRY_LARGE_BLOB_MIB must be a positive integer, got ${process.env.FERRY_LARGE_BLOB_MIB}`)
const size = sizeMiB * MiB
const chunkSize = 64 * MiB
const rssLimitMiB = 400
const resultsFile = fileURLToPath(new URL('../../bench/results/large-blob-latest.json', import.meta.url))

interface Phase {
  bytes: number
  seconds: number
  mbPerSecond: number
  peakRssMiB: number
  /** CPU seconds Ferry used during the phase: near `seconds` means Ferry is the bottleneck. */
  ferryCpuSeconds: number
}

const mib = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10

/** Runs `body` while sampling Ferry's RSS; returns its throughput and the peak RSS. */
async function measured(pid: number, bytes: number, body: () => Promise<void>): Promise<Phase> {
  const sampler = sampleRss(pid, 100)
  const cpuBefore = readCpuSeconds(pid) ?? 0
  const started = performance.now()
  let peakBytes: number
  try {
    await body()
  } finally {
    peakBytes = sampler.stop().peakBytes
  }
  const seconds = (performance.now() - started) / 1000
  const ferryCpuSeconds = Math.round(((readCpuSeconds(pid) ?? 0) - cpuBefore) * 100) / 100
  return {
    bytes,
    seconds: Math.round(seconds * 100) / 100,
    mbPerSecond: Math.round(bytes / 1e6 / seconds),
    peakRssMiB: mib(peakBytes),
    ferryCpuSeconds,
  }
}

if (process.platform !== 'linux') {
  t.plan(0, 'large-blob e2e skipped: RSS is sampled from /proc (Linux only)')
} else {
  await main()
}

async function main(): Promise<void> {
  const testStarted = performance.now()
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-large-blob-'))
  const agent = new Agent({ connections: 4 })
  let ferry: FerryProcess | undefined
  t.teardown(async () => {
    if (ferry && !t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-8000)}`)
    await agent.close()
    await ferry?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { pusher: 'pusher-pw' })
  const authorization = basic('pusher', 'pusher-pw')
  ferry = await startFerryProcess([
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--storage',
    join(work, 'data'),
    '--log-level',
    'info',
    '--htpasswd',
    htpasswd,
    '--anonymous-pull',
    '**',
  ])
  const { url, pid } = ferry
  const repo = 'e2e/large-blob'

  const phases: Record<string, Phase> = {}
  const baselineRssMiB = mib(readRss(pid) ?? 0)
  t.comment(`blob size ${sizeMiB} MiB, Ferry pid ${pid}, RSS at start ${baselineRssMiB} MiB`)

  const digestStarted = performance.now()
  const monolithicSeed = `ferry-large-blob-monolithic-${sizeMiB}`
  const monolithicDigest = pseudoRandomDigest(monolithicSeed, size)
  const digestSeconds = (performance.now() - digestStarted) / 1000
  let chunkedDigest = ''

  /** Downloads a blob, hashing and counting as it streams. */
  const download = async (t: Test, digest: string): Promise<void> => {
    const response = await request(`${url}/v2/${repo}/blobs/${digest}`, { dispatcher: agent })
    t.equal(response.statusCode, 200, 'GET blob is 200')
    t.equal(response.headers['content-length'], String(size), 'Content-Length is the blob size')
    t.equal(response.headers['docker-content-digest'], digest)
    const hash = createHash('sha256')
    let received = 0
    for await (const chunk of response.body) {
      hash.update(chunk as Buffer)
      received += (chunk as Buffer).length
    }
    t.equal(received, size, 'received every byte')
    t.equal(`sha256:${hash.digest('hex')}`, digest, 'the downloaded bytes hash to the digest')
  }

  t.test('monolithic upload (POST ?digest=)', async (t) => {
    phases.uploadMonolithic = await measured(pid, size, async () => {
      const response = await request(`${url}/v2/${repo}/blobs/uploads/?digest=${monolithicDigest}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization, 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: new PseudoRandomSource(monolithicSeed).stream(size),
      })
      const text = await response.body.text()
      t.equal(response.statusCode, 201, `POST ?digest= is 201 (body: ${text.slice(0, 300)})`)
      t.equal(response.headers['docker-content-digest'], monolithicDigest)
      t.equal(response.headers.location, `/v2/${repo}/blobs/${monolithicDigest}`)
    })
    const head = await request(`${url}/v2/${repo}/blobs/${monolithicDigest}`, { method: 'HEAD', dispatcher: agent })
    await head.body.dump()
    t.equal(head.statusCode, 200)
    t.equal(head.headers['content-length'], String(size), 'HEAD reports the full size')
  })

  t.test(`chunked upload (POST, PATCH ${chunkSize / MiB} MiB chunks, PUT ?digest=)`, async (t) => {
    const source = new PseudoRandomSource(`ferry-large-blob-chunked-${sizeMiB}`)
    const hash = createHash('sha256')
    phases.uploadChunked = await measured(pid, size, async () => {
      const start = await request(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', dispatcher: agent, headers: { authorization } })
      await start.body.dump()
      t.equal(start.statusCode, 202, 'POST starts a session')
      let location = new URL(String(start.headers.location), url)
      let patches = 0
      for (let offset = 0; offset < size; offset += chunkSize) {
        const length = Math.min(chunkSize, size - offset)
        const end = offset + length - 1
        const response = await request(location, {
          method: 'PATCH',
          dispatcher: agent,
          headers: {
            authorization,
            'content-type': 'application/octet-stream',
            'content-length': String(length),
            'content-range': `${offset}-${end}`,
          },
          body: source.stream(length, hash),
        })
        const text = await response.body.text()
        patches++
        if (response.statusCode !== 202 || response.headers.range !== `0-${end}`) {
          t.fail(`PATCH ${offset}-${end}: expected 202 with Range 0-${end}`, {
            status: response.statusCode,
            range: response.headers.range,
            body: text.slice(0, 300),
          })
          return
        }
        location = new URL(String(response.headers.location), url)
      }
      t.equal(patches, Math.ceil(size / chunkSize), 'every chunk accepted with the right Range')
      chunkedDigest = `sha256:${hash.digest('hex')}`
      location.searchParams.set('digest', chunkedDigest)
      const put = await request(location, { method: 'PUT', dispatcher: agent, headers: { authorization, 'content-length': '0' } })
      const text = await put.body.text()
      t.equal(put.statusCode, 201, `PUT ?digest= completes the upload (body: ${text.slice(0, 300)})`)
      t.equal(put.headers['docker-content-digest'], chunkedDigest)
    })
    t.equal(source.position, size, 'sent exactly the blob size')
  })

  t.test('download both blobs and verify while streaming', async (t) => {
    phases.downloadMonolithic = await measured(pid, size, () => download(t, monolithicDigest))
    if (chunkedDigest === '') {
      t.fail('the chunked upload did not complete, so its blob cannot be downloaded')
      return
    }
    phases.downloadChunked = await measured(pid, size, () => download(t, chunkedDigest))
  })

  t.test('report and memory bound', async (t) => {
    const totalSeconds = Math.round((performance.now() - testStarted) / 10) / 100
    const peakRssMiB = Math.max(...Object.values(phases).map((p) => p.peakRssMiB))
    for (const [name, phase] of Object.entries(phases)) {
      t.comment(
        `${name}: ${phase.mbPerSecond} MB/s (${mib(phase.bytes)} MiB in ${phase.seconds} s), Ferry peak RSS ${phase.peakRssMiB} MiB, Ferry CPU ${phase.ferryCpuSeconds} s`,
      )
    }
    t.comment(
      `client digest pre-pass ${digestSeconds.toFixed(2)} s; total ${totalSeconds} s; Ferry RSS at start ${baselineRssMiB} MiB, peak ${peakRssMiB} MiB`,
    )
    const result = {
      test: 'large-blob',
      date: new Date().toISOString(),
      node: process.version,
      blobMiB: sizeMiB,
      chunkMiB: chunkSize / MiB,
      baselineRssMiB,
      peakRssMiB,
      ...phases,
      totalSeconds,
    }
    await mkdir(join(resultsFile, '..'), { recursive: true })
    await writeFile(resultsFile, `${JSON.stringify(result)}\n`)
    t.ok(Object.keys(phases).length === 4, 'all four phases ran')
    t.ok(peakRssMiB < rssLimitMiB, `Ferry's peak RSS (${peakRssMiB} MiB) stays under ${rssLimitMiB} MiB: blobs are streamed, not buffered`)
  })
}
