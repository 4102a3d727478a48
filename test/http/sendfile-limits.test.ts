// The sendfile helper under load and at its limits (native/sendfile.c): a burst of clients that
// stop reading costs a few loop threads, not one thread each, and a download that finds no lane
// free (the cap reached, or no loop thread) goes through JavaScript instead of failing.
import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { nativeSendfile, type NativeSendfile } from '../../src/transfer/native-sendfile.js'
import { freshServer, type TestServer } from '../helpers/server.js'
import { digestOf, makeBlob, pushBlob, request } from '../helpers/oci.js'

const MiB = 1024 * 1024
const linuxOnly = { skip: process.platform !== 'linux' && 'Linux only' }

function helper(): NativeSendfile {
  const { native, problem } = nativeSendfile()
  if (!native) throw new Error(`the sendfile helper did not load: ${problem}`)
  return native
}

/** Limits are per JavaScript environment (this test process): each test puts the defaults back. */
function withLimits(t: Test, limits: { threads?: number; lanes?: number }): void {
  const native = helper()
  const before = native.stats()
  native.configure(limits)
  t.teardown(() => void native.configure({ threads: before.maxThreads, lanes: before.maxLanes }))
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 120_000
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await delay(20)
  }
}

function threadCount(): number {
  return readdirSync('/proc/self/task').length
}

async function sendfileBytes(server: TestServer): Promise<number> {
  const text = await server.metrics.registry.getSingleMetricAsString('ferry_http_sendfile_bytes_total')
  return [...text.matchAll(/\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
}

async function blockMemoryPeak(server: TestServer): Promise<number> {
  const text = await server.metrics.registry.getSingleMetricAsString('ferry_blob_block_memory_bytes')
  return Number(/kind="peak"\} (\d+)/.exec(text)?.[1] ?? 0)
}

/** A raw HTTP/1.1 GET whose response nobody reads: the socket buffers fill and the transfer stalls. */
async function stalledGet(server: TestServer, path: string): Promise<Socket> {
  const socket = connect(Number(new URL(server.url).port), '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(`GET ${path} HTTP/1.1\r\nhost: ${server.host}\r\n\r\n`)
  return socket
}

t.test('1,000 clients that stop reading: bounded threads, and downloads meanwhile complete', linuxOnly, async (t) => {
  const server = await freshServer(t)
  const native = helper()
  const repo = 'sendfile/stalled'
  // Larger than what the socket buffers of a client that reads nothing take in.
  const blob = makeBlob(randomBytes(8 * MiB))
  await pushBlob(server, repo, blob)
  const path = `/v2/${repo}/blobs/${blob.digest}`
  // More clients than lanes: the first 600 stall in the helper, the rest in JavaScript.
  const clients = 1000
  withLimits(t, { lanes: 600 })
  const first = await request(server, path)
  t.equal(digestOf(Buffer.from(await first.arrayBuffer())), blob.digest, 'a download before the burst')
  const baseline = threadCount()
  const bySendfileBefore = await sendfileBytes(server)
  const refusedBefore = native.stats().refused

  const sockets: Socket[] = []
  t.teardown(() => sockets.forEach((socket) => socket.destroy()))
  // In batches: the listen backlog is not the subject here.
  for (let i = 0; i < clients; i += 50) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, clients - i) }, () => stalledGet(server, path)))))
  }
  // Every request seen: a lane for the first 600, a refusal (and JavaScript) for the others.
  await until(() => native.stats().lanes + native.stats().refused - refusedBefore >= clients, 'every request to be answered')
  const stats = native.stats()
  t.equal(stats.lanes, 600, `every lane holds a stalled client (${JSON.stringify(stats)})`)
  t.ok(stats.threads <= stats.maxThreads && stats.threads >= 1, `${stats.threads} loop threads serve them`)
  t.equal(stats.refused - refusedBefore, clients - 600, 'the clients past the cap were sent through JavaScript')
  // libuv's file-system threads may start meanwhile; one thread per client would be ~1,000 more.
  const threads = threadCount()
  t.ok(threads <= baseline + stats.maxThreads + 8, `${threads} threads in the process (${baseline} before the burst)`)

  // A client that reads, while every lane is taken: JavaScript sends it, byte-exact.
  const during = await request(server, path)
  t.equal(during.status, 200)
  t.equal(digestOf(Buffer.from(await during.arrayBuffer())), blob.digest, 'a download during the burst is whole')
  t.ok((await blockMemoryPeak(server)) > 0, 'sent from shared blocks')

  // The stalled clients leave: their lanes are freed, and the helper sends the next download.
  for (const socket of sockets) socket.destroy()
  await until(() => native.stats().lanes === 0, 'the lanes to be freed')
  const after = await request(server, path)
  t.equal(digestOf(Buffer.from(await after.arrayBuffer())), blob.digest, 'a download after the burst is whole')
  // Counted when the server's response hook runs, which may come after the client has every byte.
  await until(
    async () => (await sendfileBytes(server)) >= bySendfileBefore + blob.bytes.length,
    'the download to be counted as sent by sendfile',
  )
  t.pass('and went out with sendfile again')
  t.ok(native.stats().threads <= native.stats().maxThreads, 'still no more loop threads than the cap')
})

t.test('no lane free: the download goes through JavaScript, byte-exact', linuxOnly, async (t) => {
  const server = await freshServer(t)
  const native = helper()
  const repo = 'sendfile/cap'
  const blob = makeBlob(randomBytes(5 * MiB + 3))
  await pushBlob(server, repo, blob)
  const path = `/v2/${repo}/blobs/${blob.digest}`
  withLimits(t, { lanes: 0 })
  const refused = native.stats().refused
  const whole = await request(server, path)
  t.equal(digestOf(Buffer.from(await whole.arrayBuffer())), blob.digest, 'the whole blob')
  const ranged = await request(server, path, { headers: { range: 'bytes=1000-2000999' } })
  t.equal(ranged.status, 206)
  t.ok(Buffer.from(await ranged.arrayBuffer()).equals(blob.bytes.subarray(1000, 2001000)), 'the exact range')
  t.equal(native.stats().refused, refused + 2, 'the helper refused both')
  t.equal(await sendfileBytes(server), 0, 'nothing went out with sendfile')
  t.ok((await blockMemoryPeak(server)) > 0, 'everything went out from shared blocks')
})

t.test('no loop thread may start: the download goes through JavaScript, byte-exact', linuxOnly, async (t) => {
  const server = await freshServer(t)
  const native = helper()
  const repo = 'sendfile/threads'
  const blob = makeBlob(randomBytes(3 * MiB))
  await pushBlob(server, repo, blob)
  // The path a failed thread start takes: no loop to give the lane to.
  withLimits(t, { threads: 0 })
  const refused = native.stats().refused
  const res = await request(server, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, 'the whole blob')
  t.equal(native.stats().refused, refused + 1, 'the helper refused it')
  t.equal(await sendfileBytes(server), 0, 'nothing went out with sendfile')
})

t.test('limits are checked', linuxOnly, async (t) => {
  const native = helper()
  t.throws(() => native.configure({ threads: 65 }), /threads must be a number from 0 to 64/)
  t.throws(() => native.configure({ lanes: -1 }), /lanes must be a number/)
})
