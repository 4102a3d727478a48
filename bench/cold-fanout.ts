// Cold fan-out through the mirror: N clients ask a fresh Ferry for the same uncached blob at
// once. Prints wall time, time to first byte of the slowest client, and how many times the
// upstream (CNCF distribution, on loopback) served the blob, next to the same fan-out once cached.
// Run: npx tsx bench/cold-fanout.ts [blobMiB=256] [clients=1,20]
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { startDistribution } from '../test/helpers/distribution.js'
import { startFerryProcess } from '../test/helpers/ferry-process.js'
import { seedImage } from '../test/helpers/seed.js'

const blobMiB = Number(process.argv[2] ?? 256)
const fanouts = (process.argv[3] ?? '1,20').split(',').map(Number)

interface Round {
  seconds: number
  lastFirstByteMs: number
}

async function fanOut(url: string, clients: number): Promise<Round> {
  const started = performance.now()
  const firstBytes = await Promise.all(
    Array.from({ length: clients }, async () => {
      const { statusCode, body } = await request(url)
      let first = 0
      for await (const chunk of body) if (first === 0 && (chunk as Buffer).length > 0) first = performance.now() - started
      if (statusCode !== 200) throw new Error(`status ${statusCode}`)
      return first
    }),
  )
  return { seconds: (performance.now() - started) / 1000, lastFirstByteMs: Math.max(...firstBytes) }
}

const upstream = await startDistribution()
try {
  const image = await seedImage(upstream.url, 'bench/fanout', 'v1', { layers: [randomBytes(blobMiB * 1024 * 1024)] })
  const digest = image.layers[0]!.digest
  const rows: string[] = []
  for (const clients of fanouts) {
    const storage = await mkdtemp(join(tmpdir(), 'ferry-bench-'))
    const ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', storage, '--upstream', `gcr.io=${upstream.url}`])
    try {
      const url = `${ferry.url}/v2/bench/fanout/blobs/${digest}?ns=gcr.io`
      const before = upstream.requests().filter((r) => r.method === 'GET' && r.path.endsWith(digest)).length
      const cold = await fanOut(url, clients)
      const fetches = upstream.requests().filter((r) => r.method === 'GET' && r.path.endsWith(digest)).length - before
      const warm = await fanOut(url, clients)
      const mbps = (clients * blobMiB * 1.048576) / cold.seconds
      rows.push(
        `| ${clients} | ${cold.seconds.toFixed(2)} s | ${warm.seconds.toFixed(2)} s | ${(cold.seconds / warm.seconds).toFixed(2)}× | ${cold.lastFirstByteMs.toFixed(0)} ms | ${fetches} | ${mbps.toFixed(0)} MB/s |`,
      )
    } finally {
      await ferry.stop()
      await rm(storage, { recursive: true, force: true })
    }
  }
  console.log(`Cold fan-out of one ${blobMiB} MiB blob through the mirror (node ${process.version})`)
  console.log('| clients | cold wall | cached wall | cold/cached | last client first byte | upstream fetches | cold aggregate |')
  console.log('|---|---|---|---|---|---|---|')
  for (const row of rows) console.log(row)
} finally {
  await upstream.stop()
}
