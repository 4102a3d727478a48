// Cold fan-out through the real mirror: many clients on one uncached blob while it downloads.
// Followers send the fill's shared 1 MiB blocks as the upstream's bytes arrive (transfer/shared-blocks.ts),
// and one that falls behind the blocks in memory reads the upload file through its own handle into a
// shared block; over plain HTTP/1.1 a client that comes once the fill is verified has the kernel
// send the file (sendfile), unless the helper has no lane left for it. Every body must be byte-exact either
// way, and the memory held stays within a fixed budget.
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as delay } from 'node:timers/promises'
import t from 'tap'
import { request } from 'undici'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const MiB = 1024 * 1024

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

/** Sum of a counter's series, from the server's /metrics. */
async function counterTotal(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0)
}

// On S3 there is no file to hand the kernel, so the sendfile modes would run the shared-blocks case again.
const onS3 = process.env.FERRY_TEST_STORAGE === 's3'

// Followers of a running fill send its shared blocks in both modes; with sendfile on, a client
// that comes once the fill is verified may have the kernel send the file (its lane limits are
// test/http/sendfile-limits.test.ts's).
for (const mode of ['sendfile', 'shared blocks'] as const) {
  const sendfile = mode !== 'shared blocks'
  t.test(
    `${mode}: 32 clients, whole and ranged, prompt and lagging, on one uncached blob: byte-exact, one upstream fetch`,
    { skip: sendfile && onS3 && 'S3: no sendfile, the shared-blocks case covers it' },
    async (t) => {
      const upstream = await startDistribution()
      t.teardown(() => upstream.stop())
      const ferry = await startMirrorServer(
        { upstreams: [upstreamConfig('up', upstream.url)], defaultUpstream: 'up', namespaces: [] },
        { auth: { anonymousPull: ['**'] }, sendfile },
      )
      t.teardown(() => ferry.close())
      const blob = randomBytes(32 * MiB + 4321)
      const image = await seedImage(upstream.url, 'fan/out', 'v1', { layers: [blob] })
      const digest = image.layers[0]!.digest
      const url = `${ferry.url}/v2/fan/out/blobs/${digest}`

      /** Downloads (a range of) the blob; a laggard pauses after its first chunk so the fill outruns it. */
      const fetchBody = async (range?: [number, number], lag = false): Promise<Buffer> => {
        const res = await request(url, range ? { headers: { range: `bytes=${range[0]}-${range[1]}` } } : {})
        t.equal(res.statusCode, range ? 206 : 200)
        const chunks: Buffer[] = []
        let first = true
        for await (const chunk of res.body) {
          chunks.push(chunk as Buffer)
          if (lag && first) await delay(1500)
          first = false
        }
        return Buffer.concat(chunks)
      }

      const ranges: Array<[number, number]> = [
        [0, 99],
        [MiB - 1, 3 * MiB + 1],
        [20 * MiB + 5, 30 * MiB],
        [blob.length - 4321, blob.length - 1],
      ]
      const whole = Array.from({ length: 24 }, (_, i) => fetchBody(undefined, i % 8 === 7))
      const ranged = ranges.map((range, i) => fetchBody(range, i === 2))
      const late = (async () => {
        await delay(300) // joins a fill already under way
        return Promise.all([fetchBody(), fetchBody(), fetchBody([5 * MiB, 25 * MiB]), fetchBody(undefined, true)])
      })()
      const [bodies, rangedBodies, lateBodies] = await Promise.all([Promise.all(whole), Promise.all(ranged), late])

      t.same(new Set([...bodies, ...lateBodies.slice(0, 2), lateBodies[3]!].map(sha256)), new Set([digest]), 'every whole body is the blob')
      ranges.forEach(([start, end], i) => t.ok(rangedBodies[i]!.equals(blob.subarray(start, end + 1)), `range ${start}-${end} is exact`))
      t.ok(lateBodies[2]!.equals(blob.subarray(5 * MiB, 25 * MiB + 1)), 'a late range is exact')
      const fetches = upstream.requests().filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length
      t.equal(fetches, 1, 'the upstream served the blob once')
      const lateBytes = lateBodies.reduce((sum, body) => sum + body.length, 0)
      const byKernel = await counterTotal(ferry.url, 'ferry_http_sendfile_bytes_total')
      // Followers of the running fill send its shared blocks (#18); only a client that came once
      // the fill was verified may have the kernel send the file. On S3 there is no file to hand the kernel.
      if (onS3) t.equal(byKernel, 0, 'S3: no sendfile, shared blocks send it all')
      else if (!sendfile) t.equal(byKernel, 0, 'no sendfile when it is off')
      else t.ok(byKernel <= lateBytes, `the kernel sent ${byKernel} B, at most the ${lateBytes} B of the late clients`)
    },
  )
}

/** A gauge series of ferry_blob_block_memory_bytes, from the server's /metrics. */
async function fillMemory(url: string, kind: 'held' | 'peak' | 'budget'): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = new RegExp(`^ferry_blob_block_memory_bytes\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)
  return match ? Number(match[1]) : Number.NaN
}

t.test(
  "48 slow followers spread over one uncached blob, 8 leaving early: fill memory stays within one fill's share, then is all given back",
  async (t) => {
    const upstream = await startDistribution()
    t.teardown(() => upstream.stop())
    const ferry = await startMirrorServer(
      { upstreams: [upstreamConfig('up', upstream.url)], defaultUpstream: 'up', namespaces: [] },
      { auth: { anonymousPull: ['**'] }, sendfile: false },
    )
    t.teardown(() => ferry.close())
    const blob = randomBytes(24 * MiB + 77)
    const image = await seedImage(upstream.url, 'fan/slow', 'v1', { layers: [blob] })
    const digest = image.layers[0]!.digest
    const url = `${ferry.url}/v2/fan/slow/blobs/${digest}`

    /** Reads the whole body, pausing after every chunk: followers end up at many positions. */
    const slowDigest = async (pause: number): Promise<string> => {
      const res = await request(url)
      t.equal(res.statusCode, 200)
      const hash = createHash('sha256')
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer)
        if (pause > 0) await delay(pause)
      }
      return `sha256:${hash.digest('hex')}`
    }
    /** Leaves after the first chunk: its blocks and file handle must not hold anyone up. */
    const leave = async (): Promise<void> => {
      const res = await request(url)
      for await (const _chunk of res.body) break
    }
    const [digests] = await Promise.all([
      Promise.all(Array.from({ length: 48 }, (_, i) => slowDigest(i % 4))),
      Promise.all(Array.from({ length: 8 }, leave)),
    ])
    t.same(new Set(digests), new Set([digest]), 'every body is the blob, while 8 other clients left early')

    const budget = await fillMemory(ferry.url, 'budget')
    const peak = await fillMemory(ferry.url, 'peak')
    t.ok(peak > 0, 'followers were sent from shared blocks')
    // 48 followers with up to two chunks in flight each would be 96 MiB if every one had its own.
    t.ok(peak <= 16 * MiB, `peak ${peak} B is within one fill's share of 16 MiB (budget ${budget} B)`)
    let held = await fillMemory(ferry.url, 'held')
    for (let i = 0; i < 100 && held !== 0; i++) {
      await delay(20) // the server may still be closing the last responses
      held = await fillMemory(ferry.url, 'held')
    }
    t.equal(held, 0, 'every block is given back once the fill is over and nobody follows it')
  },
)
