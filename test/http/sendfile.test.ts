// Stored blobs over plain HTTP/1.1 go out with sendfile(2) (transfer/send-file.ts): the helper is
// built (and loaded from a release prebuild first, as node-gyp-build would), it is the path taken (no shared blocks are used), the connection stays usable for the
// next request, a client that leaves or stops reading never holds the server up, and a
// stalled one is given up after the idle timeout instead of holding a lane forever.
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import t from 'tap'
import { Client } from 'undici'
import { nativeSendfile, sendfileCandidates } from '../../src/transfer/native-sendfile.js'
import { freshServer, type TestServer } from '../helpers/server.js'
import { digestOf, makeBlob, pushBlob, request } from '../helpers/oci.js'
import { eventually } from '../helpers/eventually.js'

const MiB = 1024 * 1024

async function blockMemoryPeak(server: TestServer): Promise<number> {
  const text = await server.metrics.registry.getSingleMetricAsString('ferry_blob_block_memory_bytes')
  return Number(/kind="peak"\} (\d+)/.exec(text)?.[1] ?? 0)
}

/** A raw HTTP/1.1 GET whose response the caller reads (or does not) at its own pace. */
async function rawGet(server: TestServer, path: string): Promise<Socket> {
  const socket = connect(Number(new URL(server.url).port), '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nhost: ${server.host}\r\n\r\n`)
  return socket
}

t.test('the sendfile helper is built on Linux', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const { native, problem } = nativeSendfile()
  t.ok(native, `loaded (${problem ?? 'ok'}); npm run build compiles native/sendfile.c with cc`)
})

t.test(
  'the loader takes a release prebuild first, then the local build',
  { skip: process.platform !== 'linux' && 'Linux only' },
  async (t) => {
    const built = nativeSendfile().path
    if (!built) return t.fail('the helper is not built')
    const root = await mkdtemp(join(tmpdir(), 'ferry-loader-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    const rootUrl = pathToFileURL(`${root}/`)
    const [prebuild, local] = sendfileCandidates(rootUrl) as [string, string]
    t.match(prebuild, new RegExp(`/prebuilds/linux-${process.arch}/ferry-sendfile\\.napi\\.(glibc|musl)\\.node$`), 'node-gyp-build layout')
    t.match(nativeSendfile(rootUrl), { native: undefined, problem: /not built/ }, 'neither: why')
    await mkdir(dirname(local), { recursive: true })
    await copyFile(built, local)
    t.match(nativeSendfile(rootUrl), { path: local, problem: undefined }, 'the local build')
    await mkdir(dirname(prebuild), { recursive: true })
    await writeFile(prebuild, 'not a shared object')
    const fallen = nativeSendfile(rootUrl)
    t.equal(fallen.path, local, 'a broken prebuild: the local build')
    t.match(fallen.problem, prebuild, 'and why the prebuild was passed over')
    await copyFile(built, prebuild)
    t.equal(nativeSendfile(rootUrl).path, prebuild, 'a prebuild first')
  },
)

t.test('downloads go out with sendfile: exact bytes, no shared blocks, the connection goes on', async (t) => {
  const server = await freshServer(t)
  const repo = 'sendfile/keepalive'
  const big = makeBlob(randomBytes(9 * MiB + 7))
  const small = makeBlob(randomBytes(3000))
  await pushBlob(server, repo, big)
  await pushBlob(server, repo, small)
  let connections = 0
  server.app.server.on('connection', () => connections++)

  const client = new Client(server.url, { pipelining: 1 })
  t.teardown(() => client.close())
  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> => {
    const res = await client.request({ method: 'GET', path, headers })
    const chunks: Buffer[] = []
    for await (const chunk of res.body) chunks.push(chunk as Buffer)
    return { status: res.statusCode, body: Buffer.concat(chunks) }
  }
  for (let i = 0; i < 3; i++) {
    const whole = await get(`/v2/${repo}/blobs/${big.digest}`)
    t.equal(whole.status, 200)
    t.equal(digestOf(whole.body), big.digest, `round ${i}: the whole blob, byte-exact`)
    const ranged = await get(`/v2/${repo}/blobs/${big.digest}`, { range: 'bytes=4194300-8388700' })
    t.equal(ranged.status, 206)
    t.ok(ranged.body.equals(big.bytes.subarray(4194300, 8388701)), `round ${i}: the exact range`)
    const tiny = await get(`/v2/${repo}/blobs/${small.digest}`)
    t.equal(digestOf(tiny.body), small.digest)
    const base = await get('/v2/')
    t.equal(base.status, 200, 'a JSON response after the file bodies, on the same connection')
  }
  t.equal(connections, 1, 'every response on one keep-alive connection')
  t.equal(await blockMemoryPeak(server), 0, 'no shared blocks: the kernel sent the bytes')
  // Counted in the server's response hook, which may run after the client has the last byte.
  const expected = 3 * (big.bytes.length + (8388700 - 4194300 + 1) + small.bytes.length)
  const kernelBytes = async () => {
    const text = await server.metrics.registry.getSingleMetricAsString('ferry_http_sendfile_bytes_total')
    return [...text.matchAll(/\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
  }
  await eventually(async () => (await kernelBytes()) >= expected, { message: 'every download counted as sent by sendfile' })
  t.equal(await kernelBytes(), expected, 'counted in ferry_http_sendfile_bytes_total')
})

t.test('a client that leaves mid-download does not hold the server up', async (t) => {
  const server = await freshServer(t)
  const repo = 'sendfile/leave'
  const blob = makeBlob(randomBytes(48 * MiB))
  await pushBlob(server, repo, blob)
  const path = `/v2/${repo}/blobs/${blob.digest}`
  for (let i = 0; i < 8; i++) {
    const socket = await rawGet(server, path)
    await once(socket, 'data')
    socket.destroy()
  }
  const res = await request(server, path)
  t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, 'the next download is whole')
})

t.test('a client that stops reading is given up after the idle timeout', async (t) => {
  const server = await freshServer(t)
  const repo = 'sendfile/stall'
  const blob = makeBlob(randomBytes(64 * MiB))
  await pushBlob(server, repo, blob)
  // Set after the push, whose own pauses on a loaded machine must not count as stalls.
  server.app.server.timeout = 400
  const accepted: Socket[] = []
  server.app.server.on('connection', (s: Socket) => void accepted.push(s))
  const socket = await rawGet(server, `/v2/${repo}/blobs/${blob.digest}`)
  await once(socket, 'readable')
  // Read nothing: the socket buffers fill up, the transfer makes no progress, and the server
  // gives the connection up (its side closes) however long its idle timer takes to fire.
  const serverSide = accepted.find((s) => s.remotePort === socket.localPort)!
  await eventually(() => serverSide.destroyed, { message: 'the server closed the stalled connection' })
  let received = 0
  socket.on('data', (chunk: Buffer) => (received += chunk.length))
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    once(socket, 'close').then(() => 'closed'),
    new Promise((resolve) => (timer = setTimeout(resolve, 60_000, 'still open'))),
  ])
  clearTimeout(timer) // else it holds the test process open for the whole minute
  socket.destroy()
  t.equal(outcome, 'closed', 'the server closed the stalled connection')
  t.ok(received > 0 && received < blob.bytes.length, `what was buffered (${received} B), short of the whole blob`)
  const next = await request(server, '/v2/')
  t.equal(next.status, 200, 'the server goes on')
})
