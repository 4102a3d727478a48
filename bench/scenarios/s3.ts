// Scenario: Ferry on S3 (s3rver on loopback, in this process with Ferry's app, as the tests run
// them). S3 requests per operation, counted by the driver's request counter: a monolithic push
// (POST ?digest=), the same blob pushed in chunks, a warm manifest GET by tag, a blob HEAD. Push
// and cached-pull throughput against the ceiling of a bare @aws-sdk/client-s3 multipart upload
// and download of the same bytes to the same server in the same run. Not measured here yet: a
// cold mirror fill's requests and the peak RSS of 16 concurrent pulls (see the issue notes).
import { Upload } from '../lib/s3-bare.js'
import { startS3Server } from '../../test/helpers/s3-server.js'
import { startTestServer } from '../../test/helpers/server.js'
import { imageManifest, makeBlob, pushManifest, randomConfig, request } from '../../test/helpers/oci.js'
import { PseudoRandomSource } from '../../test/helpers/pseudo-random.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { fmt, MB, MiB, progress, table } from '../lib/stats.js'

function bytes(length: number, seed: string): Buffer {
  const source = new PseudoRandomSource(seed)
  const chunks: Buffer[] = []
  for (let left = length; left > 0; left -= MiB) chunks.push(source.next(Math.min(left, MiB)))
  return Buffer.concat(chunks)
}

export const s3: Scenario = {
  name: 's3',
  title: 'S3 storage',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const size = ctx.settings.quick ? 32 * MiB : 100 * MiB
    const s3server = await startS3Server()
    const server = await startTestServer({ storage: 's3', s3: s3server })
    try {
      const counted = async (fn: () => Promise<unknown>): Promise<{ count: number; seconds: number }> => {
        const before = s3server.requests.length
        const started = performance.now()
        await fn()
        return { count: s3server.requests.length - before, seconds: (performance.now() - started) / 1000 }
      }
      progress(`s3: ${size / MiB} MiB pushes`)
      const mono = makeBlob(bytes(size, 's3-mono'))
      const push = await counted(async () => {
        const res = await request(server, `/v2/bench/s3/blobs/uploads/?digest=${encodeURIComponent(mono.digest)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream' },
          body: mono.bytes,
        })
        if (res.status !== 201) throw new Error(`push answered ${res.status}`)
      })
      const chunkedBlob = makeBlob(bytes(size, 's3-chunked'))
      const chunkSize = 10 * MiB
      const chunked = await counted(async () => {
        const start = await request(server, '/v2/bench/s3/blobs/uploads/', { method: 'POST' })
        let location = new URL(start.headers.get('location')!, server.url)
        for (let offset = 0; offset < size; offset += chunkSize) {
          const chunk = chunkedBlob.bytes.subarray(offset, offset + chunkSize)
          const res = await fetch(location, {
            method: 'PATCH',
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
            body: chunk,
          })
          if (res.status !== 202) throw new Error(`PATCH answered ${res.status}`)
          location = new URL(res.headers.get('location')!, server.url)
        }
        location.searchParams.set('digest', chunkedBlob.digest)
        const done = await fetch(location, { method: 'PUT' })
        if (done.status !== 201) throw new Error(`PUT answered ${done.status}`)
      })
      const config = randomConfig()
      await request(server, `/v2/bench/s3/blobs/uploads/?digest=${encodeURIComponent(config.digest)}`, {
        method: 'POST',
        body: config.bytes,
      })
      const manifest = imageManifest({ config, layers: [mono] })
      await pushManifest(server, 'bench/s3', 'v1', manifest)
      await request(server, '/v2/bench/s3/manifests/v1', { headers: { accept: manifest.mediaType } })
      const warm = await counted(() => request(server, '/v2/bench/s3/manifests/v1', { headers: { accept: manifest.mediaType } }))
      const head = await counted(() => request(server, `/v2/bench/s3/blobs/${mono.digest}`, { method: 'HEAD' }))
      progress('s3: cached pull')
      // Bytes counted, not hashed, as the bare download below (the push tests check them exact).
      const pull = await counted(async () => {
        const res = await request(server, `/v2/bench/s3/blobs/${mono.digest}`)
        let got = 0
        for await (const chunk of res.body!) got += (chunk as Uint8Array).length
        if (got !== size) throw new Error(`pulled ${got} bytes of ${size}`)
      })
      progress('s3: bare SDK ceiling')
      const bare = new Upload(s3server.driverOptions('bare'))
      const barePush = await counted(() => bare.put('bare/blob', mono.bytes))
      const barePull = await counted(() => bare.get('bare/blob'))
      bare.close()

      const mbps = (seconds: number): string => fmt(size / MB / seconds)
      const markdown = [
        table(
          [`S3 requests (s3rver), ${size / MiB} MiB blob`, 'Ferry', 'CNCF distribution (from its code)'],
          [
            ['monolithic push (POST ?digest=)', String(push.count), '≈ 39 and a server-side copy'],
            [`the same blob in ${chunkSize / MiB} MiB PATCHes`, String(chunked.count), ''],
            ['warm manifest GET by tag', String(warm.count), ''],
            ['blob HEAD', String(head.count), ''],
            ['cached blob GET', String(pull.count), ''],
          ],
        ),
        table(
          ['throughput MB/s (one run)', 'Ferry', 'bare SDK', 'Ferry / bare'],
          [
            ['push', mbps(push.seconds), mbps(barePush.seconds), fmt(barePush.seconds / push.seconds, 2)],
            ['cached pull', mbps(pull.seconds), mbps(barePull.seconds), fmt(barePull.seconds / pull.seconds, 2)],
          ],
        ),
      ].join('\n\n')
      return {
        markdown,
        checks: [
          {
            target: `${size / MiB} MiB monolithic push in ≤ 12 S3 requests`,
            holds: size > 100 * MiB || push.count <= 12,
            measured: String(push.count),
          },
          { target: 'warm manifest GET: 0 S3 requests', holds: warm.count === 0, measured: String(warm.count) },
          {
            target: 'push ≥ 0.8× bare SDK',
            holds: barePush.seconds / push.seconds >= 0.8,
            measured: fmt(barePush.seconds / push.seconds, 2),
          },
          {
            target: 'cached pull ≥ 0.8× bare SDK',
            holds: barePull.seconds / pull.seconds >= 0.8,
            measured: fmt(barePull.seconds / pull.seconds, 2),
          },
        ],
        json: { size, push, chunked, warm, head, pull, barePush, barePull },
      }
    } finally {
      await server.close()
      await s3server.close()
    }
  },
}
