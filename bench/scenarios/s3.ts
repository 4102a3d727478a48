// Scenario: Ferry on S3. Three processes, as in production where the store is remote: the
// compiled Ferry (`storage.driver: s3`), s3rver (lib/s3rver-child.ts) and this harness, the
// client. S3 requests per operation, counted by s3rver: a monolithic push (POST ?digest=), the
// same blob pushed in chunks, a warm manifest GET by tag, a blob HEAD, a cached blob GET. Push and
// cached-pull throughput in alternating rounds against the ceiling of a bare @aws-sdk/client-s3
// multipart upload and download of the same bytes from this process to the same s3rver; both
// clients read and write in JavaScript here. Then Ferry's peak RSS while 16 curl clients pull a
// 1 GiB blob from it at once (one blob 16 times: Ferry opens one GetObject per pull either way).
// The cached pull has a third target for reference, the least any process between client and
// store costs: a bare node:http server piping one GetObject per GET (lib/s3-hop-child.ts), and
// a fourth: a second Ferry on the same bucket with http.sendfile off, whose pulls go through
// JavaScript as they did before the splice path (the first Ferry splices the store's socket to
// the client's). Pulls run three times as many alternating rounds as pushes; each round's
// Ferry / bare ratio is paired in time, so their median and range say more on a loaded machine
// than a ratio of medians, and the CPU seconds of all three processes per transfer say what the
// throughput would be on two shared cores.
// Not measured here: a cold mirror fill's requests.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { Upload } from '../lib/s3-bare.js'
import { randomBlob, randomBlobDigest } from '../lib/blobs.js'
import { concurrentDownloads, pushManifest } from '../lib/http.js'
import { basicAuthorization, launch, startFerry, type Server } from '../lib/processes.js'
import { quietly } from '../lib/quiet.js'
import { imageManifest, makeBlob, randomConfig } from '../../test/helpers/oci.js'
import { PseudoRandomSource } from '../../test/helpers/pseudo-random.js'
import { readCpuSeconds, readRss } from '../../test/helpers/rss-sampler.js'
import type { S3DriverOptions } from '../../src/storage/driver/s3-client.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { alternate, fmt, MB, measured, median, MiB, progress, Samples, table } from '../lib/stats.js'

const repo = 'bench/s3'
const s3rverEntry = fileURLToPath(new URL('../lib/s3rver-child.ts', import.meta.url))
const hopEntry = fileURLToPath(new URL('../lib/s3-hop-child.ts', import.meta.url))

function bytes(length: number, seed: string): Buffer {
  const source = new PseudoRandomSource(seed)
  const chunks: Buffer[] = []
  for (let left = length; left > 0; left -= MiB) chunks.push(source.next(Math.min(left, MiB)))
  return Buffer.concat(chunks)
}

interface Store {
  pid: number
  endpoint: string
  bucket: string
  /** The S3 operations s3rver has received since the last call. */
  newRequests(): Promise<string[]>
  stop(): Promise<void>
}

async function startStore(dir: string): Promise<Store> {
  const child = launch(process.execPath, ['--import', 'tsx', s3rverEntry], join(dir, 's3rver.log'), { ipc: true })
  const ready = await new Promise<{ endpoint: string; bucket: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('s3rver did not start within 30 s')), 30_000)
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)))
    child.on('message', (message: { type: string; endpoint: string; bucket: string }) => {
      if (message.type !== 'ready') return
      clearTimeout(timer)
      resolve(message)
    })
  })
  let seen = 0
  return {
    ...ready,
    pid: child.pid ?? -1,
    newRequests: async () => {
      const answer = new Promise<string[]>((resolve) => {
        const listener = (message: { type: string; operations: string[] }): void => {
          if (message.type !== 'requests') return
          child.off('message', listener)
          resolve(message.operations)
        }
        child.on('message', listener)
      })
      child.send({ type: 'requests', from: seen })
      const operations = await answer
      seen += operations.length
      return operations
    },
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      await exited
    },
  }
}

/** The node:http hop (lib/s3-hop-child.ts) on the store, through the S3 client Ferry uses. */
async function startHop(dir: string, options: S3DriverOptions): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const child = launch(process.execPath, ['--import', 'tsx', hopEntry, JSON.stringify(options)], join(dir, 'hop.log'), { ipc: true })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the node:http hop did not start within 30 s')), 30_000)
    child.once('exit', (code) => reject(new Error(`the node:http hop exited (${code})`)))
    child.on('message', (message: { type: string; url: string }) => {
      if (message.type !== 'ready') return
      clearTimeout(timer)
      resolve(message.url)
    })
  })
  return {
    url,
    pid: child.pid ?? -1,
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.disconnect()
      await exited
    },
  }
}

/** GET of `url` to the end, its bytes counted. */
async function download(url: string, size: number, headers: Record<string, string> = {}): Promise<void> {
  const res = await request(url, { headers })
  if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`)
  let got = 0
  for await (const chunk of res.body) got += (chunk as Buffer).length
  if (got !== size) throw new Error(`pulled ${got} bytes of ${size}`)
}

/** POST ?digest= with the whole blob: one request, Ferry's direct write to the content address. */
async function push(ferry: Server, digest: string, size: number, body: Buffer | (() => NodeJS.ReadableStream)): Promise<void> {
  const res = await request(`${ferry.url}/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, {
    method: 'POST',
    headers: { ...ferry.pushHeaders, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: Buffer.isBuffer(body) ? body : (body() as never),
  })
  const text = await res.body.text()
  if (res.statusCode !== 201) throw new Error(`push answered ${res.statusCode}: ${text.slice(0, 300)}`)
}

/** GET of the whole blob, its bytes counted (not hashed: the bare download below does not either). */
function pull(ferry: Server, digest: string, size: number): Promise<void> {
  return download(`${ferry.url}/v2/${repo}/blobs/${digest}`, size, ferry.headers)
}

async function chunkedPush(ferry: Server, blob: { bytes: Buffer; digest: string }, chunkSize: number): Promise<void> {
  const auth = ferry.pushHeaders
  const start = await request(`${ferry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth })
  await start.body.text()
  let location = new URL(String(start.headers.location), ferry.url)
  for (let offset = 0; offset < blob.bytes.length; offset += chunkSize) {
    const chunk = blob.bytes.subarray(offset, offset + chunkSize)
    const res = await request(location, {
      method: 'PATCH',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
      body: chunk,
    })
    await res.body.text()
    if (res.statusCode !== 202) throw new Error(`PATCH answered ${res.statusCode}`)
    location = new URL(String(res.headers.location), ferry.url)
  }
  location.searchParams.set('digest', blob.digest)
  const done = await request(location, { method: 'PUT', headers: { ...auth, 'content-length': '0' } })
  await done.body.text()
  if (done.statusCode !== 201) throw new Error(`PUT answered ${done.statusCode}`)
}

export const s3: Scenario = {
  name: 's3',
  title: 'S3 storage',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const size = s.quick ? 32 * MiB : 100 * MiB
    const manyMiB = Number(process.env.BENCH_S3_PULL_MIB ?? (s.quick ? 256 : 1024))
    const store = await startStore(ctx.dir)
    const storage = {
      driver: 's3',
      s3: {
        bucket: store.bucket,
        prefix: 'ferry',
        endpoint: store.endpoint,
        forcePathStyle: true,
        accessKeyId: 'S3RVER',
        secretAccessKey: 'S3RVER',
        requestChecksumCalculation: 'WHEN_REQUIRED',
      },
    }
    const ferry = await startFerry({
      name: 'ferry on s3',
      dir: join(ctx.dir, 'ferry-s3'),
      storage,
    })
    // The same bucket and prefix: it serves the blobs the first one stores.
    const ferryJs = await startFerry({
      name: 'ferry on s3, no sendfile',
      dir: join(ctx.dir, 'ferry-s3-js'),
      storage,
      http: { sendfile: false },
    })
    const bareOptions: S3DriverOptions = {
      bucket: store.bucket,
      prefix: '',
      region: 'us-east-1',
      endpoint: store.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      storageClass: undefined,
      sse: undefined,
      caPath: undefined,
      maxSockets: 50,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    }
    const bare = new Upload(bareOptions)
    const hop = await startHop(ctx.dir, bareOptions)
    // Ferry runs with the bench user (processes.ts): pushes carry its credentials from the start.
    ferry.pushHeaders.authorization = basicAuthorization()
    ferryJs.pushHeaders.authorization = basicAuthorization()
    ferryJs.headers.authorization = basicAuthorization()
    try {
      const operations: Record<string, string[]> = {}
      const counted = async (label: string, fn: () => Promise<unknown>): Promise<number> => {
        await store.newRequests()
        await fn()
        operations[label] = await store.newRequests()
        return operations[label].length
      }
      progress(`s3: ${size / MiB} MiB pushes, S3 requests counted`)
      // The config first: the counted push goes into an existing repository (a new one adds its
      // marker and catalog entry once).
      const config = randomConfig()
      await push(ferry, config.digest, config.size, config.bytes)
      const mono = makeBlob(bytes(size, 's3-mono'))
      const pushCount = await counted('push', () => push(ferry, mono.digest, size, mono.bytes))
      const chunkedBlob = makeBlob(bytes(size, 's3-chunked'))
      const chunkSize = 10 * MiB
      const chunkedCount = await counted('chunked', () => chunkedPush(ferry, chunkedBlob, chunkSize))
      const manifest = imageManifest({ config, layers: [mono] })
      await pushManifest(ferry, repo, 'v1', manifest.bytes, manifest.mediaType)
      const getManifest = async (): Promise<void> => {
        const res = await request(`${ferry.url}/v2/${repo}/manifests/v1`, { headers: { ...ferry.headers, accept: manifest.mediaType } })
        await res.body.text()
        if (res.statusCode === 401 && ferry.headers.authorization === undefined) {
          ferry.headers.authorization = basicAuthorization()
          return getManifest()
        }
        if (res.statusCode !== 200) throw new Error(`manifest GET answered ${res.statusCode}`)
      }
      await getManifest()
      const warmCount = await counted('warm manifest', getManifest)
      const headCount = await counted('head', async () => {
        const res = await request(`${ferry.url}/v2/${repo}/blobs/${mono.digest}`, { method: 'HEAD', headers: ferry.headers })
        await res.body.text()
        if (res.statusCode !== 200) throw new Error(`blob HEAD answered ${res.statusCode}`)
      })
      const pullCount = await counted('pull', () => pull(ferry, mono.digest, size))

      const pullRounds = s.rounds * 3
      progress(`s3: throughput, ${s.rounds} (push) and ${pullRounds} (pull) alternating rounds of Ferry and the bare SDK`)
      const samples = new Samples()
      const timed = async (target: string, metric: string, fn: () => Promise<unknown>): Promise<void> => {
        // CPU seconds of each process on the path too: unlike MB/s, they hardly move with the load.
        const taken = await quietly(`s3 ${target} ${metric}`, async () => {
          const client = process.cpuUsage()
          // The middle process: Ferry, or the node:http hop.
          const middle = target === 'hop' ? hop.pid : target === 'js' ? ferryJs.pid : ferry.pid
          const cpu = (): number[] => [readCpuSeconds(middle) ?? Number.NaN, readCpuSeconds(store.pid) ?? Number.NaN]
          const [ferryCpu, storeCpu] = cpu()
          const started = performance.now()
          await fn()
          const seconds = (performance.now() - started) / 1000
          const used = process.cpuUsage(client)
          const [ferryAfter, storeAfter] = cpu()
          return { seconds, client: (used.user + used.system) / 1e6, ferry: ferryAfter! - ferryCpu!, store: storeAfter! - storeCpu! }
        })
        samples.add(target, metric, size / MB / taken.seconds)
        samples.add(target, `${metric} cpu client`, taken.client)
        if (target !== 'bare') samples.add(target, `${metric} cpu ferry`, taken.ferry)
        samples.add(target, `${metric} cpu store`, taken.store)
      }
      const runs = {
        ferry: { push: () => push(ferry, mono.digest, size, mono.bytes), pull: () => pull(ferry, mono.digest, size) },
        bare: { push: () => bare.put('bare/blob', mono.bytes), pull: () => bare.get('bare/blob') },
        hop: { pull: () => download(`${hop.url}/bare/blob`, size) },
        js: { pull: () => pull(ferryJs, mono.digest, size) },
      }
      for (let round = 0; round < pullRounds; round++) {
        if (round < s.rounds)
          for (const target of alternate(['ferry', 'bare'] as const, round)) await timed(target, 'push', runs[target].push)
        for (const target of alternate(['ferry', 'bare', 'hop', 'js'] as const, round)) await timed(target, 'pull', runs[target].pull)
      }

      progress(`s3: 16 concurrent pulls of a ${manyMiB} MiB blob, Ferry's RSS sampled`)
      const many = manyMiB * MiB
      const manyDigest = await randomBlobDigest('s3-many', many)
      await push(ferry, manyDigest, many, () => randomBlob('s3-many', many))
      const idleRss = readRss(ferry.pid) ?? Number.NaN
      const pulls = await measured(ferry.pid, () => concurrentDownloads(ferry, [`/v2/${repo}/blobs/${manyDigest}`], 16, many))
      const peakMiB = pulls.peakRssBytes / MiB

      const ratio = (metric: string, target = 'ferry'): number => samples.median(target, metric) / samples.median('bare', metric)
      /** Each round's target / bare ratio (the two ran back to back): their median, min and max. */
      const paired = (metric: string, target = 'ferry'): { median: number; min: number; max: number } => {
        const bareRounds = samples.values('bare', metric)
        const ratios = samples.values(target, metric).map((value, i) => value / bareRounds[i]!)
        return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
      }
      const pairedText = (metric: string, target = 'ferry'): string => {
        const { median: mid, min, max } = paired(metric, target)
        return `${fmt(mid, 2)} (${fmt(min, 2)}–${fmt(max, 2)})`
      }
      /** CPU seconds of every process on the path per transfer (client, middle, store; medians). */
      const totalCpu = (metric: string, target: string): number =>
        ['client', 'ferry', 'store'].reduce(
          (sum, process) => sum + (target === 'bare' && process === 'ferry' ? 0 : samples.median(target, `${metric} cpu ${process}`)),
          0,
        )
      const markdown = [
        table(
          [`S3 requests (s3rver), ${size / MiB} MiB blob`, 'Ferry', 'CNCF distribution (from its code)'],
          [
            ['monolithic push (POST ?digest=) into an existing repository', String(pushCount), '≈ 39 and a server-side copy'],
            [`the same blob in ${chunkSize / MiB} MiB PATCHes`, String(chunkedCount), ''],
            ['warm manifest GET by tag', String(warmCount), ''],
            ['blob HEAD', String(headCount), ''],
            ['cached blob GET', String(pullCount), ''],
          ],
        ),
        table(
          [
            `MB/s, ${size / MiB} MiB, medians of ${s.rounds} (push) / ${pullRounds} (pull) alternating rounds`,
            'Ferry',
            'bare SDK',
            'Ferry / bare (ratio of medians)',
            'Ferry / bare per round: median (min–max)',
          ],
          [
            ...['push', 'pull'].map((metric) => [
              metric === 'push' ? 'push' : 'cached pull (spliced)',
              fmt(samples.median('ferry', metric)),
              fmt(samples.median('bare', metric)),
              fmt(ratio(metric), 2),
              pairedText(metric),
            ]),
            ...(['js', 'hop'] as const).map((target) => [
              target === 'js' ? 'cached pull, Ferry with http.sendfile off (JavaScript)' : 'cached pull, bare node:http hop',
              fmt(samples.median(target, 'pull')),
              fmt(samples.median('bare', 'pull')),
              fmt(ratio('pull', target), 2),
              pairedText('pull', target),
            ]),
          ],
        ),
        table(
          [`CPU seconds per ${size / MiB} MiB (medians)`, 'client (this harness)', 'Ferry (or the hop)', 's3rver', 'all', 'bare all / all'],
          ['push', 'pull'].flatMap((metric) =>
            (metric === 'push' ? (['ferry', 'bare'] as const) : (['ferry', 'js', 'bare', 'hop'] as const)).map((target) => [
              `${metric === 'push' ? 'push' : 'cached pull'}, ${{ ferry: 'through Ferry', js: 'through Ferry, sendfile off', bare: 'bare SDK', hop: 'through the node:http hop' }[target]}`,
              fmt(samples.median(target, `${metric} cpu client`), 2),
              target !== 'bare' ? fmt(samples.median(target, `${metric} cpu ferry`), 2) : '',
              fmt(samples.median(target, `${metric} cpu store`), 2),
              fmt(totalCpu(metric, target), 2),
              fmt(totalCpu(metric, 'bare') / totalCpu(metric, target), 2),
            ]),
          ),
        ),
        table(
          [`16 concurrent pulls of one ${manyMiB} MiB blob (curl)`, 'value'],
          [
            ['Ferry RSS before the pulls', `${fmt(idleRss / MiB)} MiB`],
            ['Ferry peak RSS', `${fmt(peakMiB)} MiB`],
            ['aggregate MB/s', fmt(pulls.value.bytes / MB / pulls.value.seconds)],
          ],
        ),
      ].join('\n\n')
      return {
        markdown,
        checks: [
          {
            target: `${size / MiB} MiB monolithic push in ≤ 12 S3 requests`,
            holds: size > 100 * MiB || pushCount <= 12,
            measured: String(pushCount),
          },
          { target: 'warm manifest GET: 0 S3 requests', holds: warmCount === 0, measured: String(warmCount) },
          // The median of per-round ratios: each pair ran back to back, under the same load.
          { target: 'push ≥ 0.8× bare SDK (per-round median)', holds: paired('push').median >= 0.8, measured: pairedText('push') },
          { target: 'cached pull ≥ 0.8× bare SDK (per-round median)', holds: paired('pull').median >= 0.8, measured: pairedText('pull') },
          {
            target: `peak RSS ≤ 200 MiB during 16 concurrent ${manyMiB} MiB pulls`,
            holds: peakMiB <= 200,
            measured: `${fmt(peakMiB)} MiB`,
          },
        ],
        json: {
          size,
          requests: operations,
          throughput: samples.toJSON(),
          manyPulls: { blobBytes: many, clients: 16, rssBeforeBytes: idleRss, peakRssBytes: pulls.peakRssBytes, ...pulls.value },
        },
      }
    } finally {
      bare.close()
      await hop.stop()
      await ferryJs.stop()
      await ferry.stop()
      await store.stop()
    }
  },
}
