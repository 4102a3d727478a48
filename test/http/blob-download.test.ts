// Blob downloads from storage through the real server, both ways a stored blob is sent: by the
// kernel with sendfile(2) (transfer/send-file.ts, plain HTTP/1.1) and from 1 MiB blocks shared by
// the downloads of one blob (transfer/shared-reads.ts, used for TLS and HTTP/2). Byte-exact whole,
// by range and HEAD, and a file that turns out shorter than its size mid-download breaks the
// response instead of ending it as a short 200.
import { createHash, randomBytes } from 'node:crypto'
import { truncate } from 'node:fs/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import t from 'tap'
import { request as undiciRequest } from 'undici'
import { freshServer } from '../helpers/server.js'
import { digestOf, makeBlob, pushBlob, request } from '../helpers/oci.js'

const MiB = 1024 * 1024
// On S3 (FERRY_TEST_STORAGE=s3) a stored blob is no file: there is nothing to truncate, and
// downloads stream ranged GETs rather than blocks shared through the block budget.
const onS3 = process.env.FERRY_TEST_STORAGE === 's3'

function blobFile(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')
}

for (const sendfile of [true, false]) {
  const way = sendfile ? 'sendfile' : 'shared blocks'

  t.test(`${way}: whole, ranged and HEAD downloads are byte-exact across buffer boundaries`, async (t) => {
    const server = await freshServer(t, { sendfile })
    const repo = 'download/exact'
    const blob = makeBlob(randomBytes(5 * MiB + 123))
    await pushBlob(server, repo, blob)
    const path = `/v2/${repo}/blobs/${blob.digest}`

    for (let i = 0; i < 3; i++) {
      // Several in a row, and two at once: buffers are reused between responses.
      const [a, b] = await Promise.all([request(server, path), request(server, path)])
      for (const res of [a, b]) {
        t.equal(res.status, 200)
        t.equal(res.headers.get('content-length'), String(blob.bytes.length))
        t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, `round ${i}: byte-exact`)
      }
    }
    const head = await request(server, path, { method: 'HEAD' })
    t.equal(head.status, 200)
    t.equal(head.headers.get('content-length'), String(blob.bytes.length))

    const ranges: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      ['bytes=100-2097251', 100, 2097251], // crosses two buffer boundaries
      [`bytes=${MiB}-`, MiB, blob.bytes.length - 1],
      ['bytes=-1000', blob.bytes.length - 1000, blob.bytes.length - 1],
    ]
    for (const [header, start, end] of ranges) {
      const res = await request(server, path, { headers: { range: header } })
      t.equal(res.status, 206, header)
      t.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${blob.bytes.length}`)
      t.equal(res.headers.get('content-length'), String(end - start + 1))
      t.ok(Buffer.from(await res.arrayBuffer()).equals(blob.bytes.subarray(start, end + 1)), `${header}: the exact bytes`)
    }
    const unsatisfiable = await request(server, path, { headers: { range: `bytes=${blob.bytes.length}-` } })
    t.equal(unsatisfiable.status, 416)
    await unsatisfiable.arrayBuffer()
  })

  t.test(
    `${way}: a file cut short mid-download is a failed response, not a short 200`,
    { skip: onS3 && 'a file truncated in place: filesystem only' },
    async (t) => {
      const server = await freshServer(t, { sendfile })
      const repo = 'download/truncated'
      const blob = makeBlob(randomBytes(64 * MiB))
      await pushBlob(server, repo, blob)
      const response = await undiciRequest(`${server.url}/v2/${repo}/blobs/${blob.digest}`)
      t.equal(response.statusCode, 200)
      let received = 0
      let failed: unknown
      try {
        for await (const chunk of response.body) {
          // At most the socket buffers (sendfile) or a few 1 MiB blocks (shared blocks) are ahead
          // of what the client took: cutting the file now leaves most of it unsent.
          if (received === 0) await truncate(blobFile(server.root, blob.digest), MiB)
          received += (chunk as Buffer).length
        }
      } catch (err) {
        failed = err
      }
      t.ok(failed, `the body failed (after ${received} of ${blob.bytes.length} bytes)`)
      t.ok(received < blob.bytes.length, 'short of the declared length')

      const next = await request(server, '/v2/')
      t.equal(next.status, 200, 'the server goes on')
    },
  )
}

t.test("40 slow downloads of one blob at once share its blocks: exact bodies, memory within one blob's share", async (t) => {
  const server = await freshServer(t, { sendfile: false })
  const repo = 'download/shared'
  const blob = makeBlob(randomBytes(20 * MiB + 5))
  await pushBlob(server, repo, blob)
  const url = `${server.url}/v2/${repo}/blobs/${blob.digest}`
  const blockMemory = async (kind: string): Promise<number> => {
    const text = await server.metrics.registry.getSingleMetricAsString('ferry_blob_block_memory_bytes')
    return Number(new RegExp(`kind="${kind}"\\} (\\d+)`).exec(text)?.[1])
  }

  /** Hashes (a range of) the blob, pausing 0-3 ms per chunk so the downloads spread out. */
  const download = async (i: number, range?: [number, number]): Promise<string> => {
    const res = await undiciRequest(url, range ? { headers: { range: `bytes=${range[0]}-${range[1]}` } } : {})
    t.equal(res.statusCode, range ? 206 : 200)
    const hash = createHash('sha256')
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      if (i % 4) await delay(i % 4)
    }
    return hash.digest('hex')
  }
  const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
  const ranges: Array<[number, number]> = [
    [MiB - 3, 5 * MiB + 2],
    [19 * MiB, 20 * MiB + 4],
    [7, 7],
  ]
  /** Leaves after the first chunk: the blocks it pinned or was reading must not hold anyone up. */
  const leave = async (): Promise<void> => {
    const res = await undiciRequest(url)
    for await (const _chunk of res.body) break
  }
  const [whole, ranged] = await Promise.all([
    Promise.all(Array.from({ length: 37 }, (_, i) => download(i))),
    Promise.all(ranges.map((range, i) => download(i + 1, range))),
    Promise.all(Array.from({ length: 6 }, leave)),
  ])
  t.same(new Set(whole), new Set([sha(blob.bytes)]), 'every whole body is the blob')
  ranges.forEach(([start, end], i) => t.equal(ranged[i], sha(blob.bytes.subarray(start, end + 1)), `range ${start}-${end} is exact`))
  // S3 objects are streamed from ranged GETs, not read from a file into shared blocks.
  if (onS3) return
  // 40 downloads with two 1 MiB chunks each in flight would be 80 MiB with buffers of their own.
  const peak = await blockMemory('peak')
  t.ok(peak > 0 && peak <= 16 * MiB, `peak ${peak} B is within one blob's share of 16 MiB`)
  let held = await blockMemory('held')
  for (let i = 0; i < 100 && held !== 0; i++) {
    await delay(20) // the last responses may still be closing
    held = await blockMemory('held')
  }
  t.equal(held, 0, 'every block is given back once nobody downloads the blob')
})
