// Blob downloads from storage through the real server: sent from reused buffers
// (http/send-pulled.ts), byte-exact whole, by range and HEAD, and a file that turns out shorter
// than its size mid-download breaks the response instead of ending it as a short 200.
import { randomBytes } from 'node:crypto'
import { truncate } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { request as undiciRequest } from 'undici'
import { freshServer } from '../helpers/server.js'
import { digestOf, makeBlob, pushBlob, request } from '../helpers/oci.js'

const MiB = 1024 * 1024

function blobFile(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length)
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex, 'data')
}

t.test('whole, ranged and HEAD downloads are byte-exact across buffer boundaries', async (t) => {
  const server = await freshServer(t)
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

t.test('a file cut short mid-download is a failed response, not a short 200', async (t) => {
  const server = await freshServer(t)
  const repo = 'download/truncated'
  const blob = makeBlob(randomBytes(64 * MiB))
  await pushBlob(server, repo, blob)
  const response = await undiciRequest(`${server.url}/v2/${repo}/blobs/${blob.digest}`)
  t.equal(response.statusCode, 200)
  let received = 0
  let failed: unknown
  try {
    for await (const chunk of response.body) {
      // The server reads at most two buffers ahead of what the socket took: cutting the file
      // now leaves most of it unread.
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
})
