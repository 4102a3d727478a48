// Cached blob GETs on S3 over plain HTTP: the S3 driver reads on a connection of its own
// (storage/driver/s3-socket-get.ts) and the sendfile helper splices that socket to the client's
// (transfer/send-file.ts, native/sendfile-loops.c). Byte-exact whole and ranged GETs, a client
// that leaves midway and a store that stops mid-body leave no lane nor descriptor behind, and a
// GET that finds no lane goes through JavaScript. The store sits behind a TCP relay that can cut
// its responses.
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import t from 'tap'
import { nativeSendfile, type NativeSendfile } from '../../src/transfer/native-sendfile.js'
import { eventually } from '../helpers/eventually.js'
import { PseudoRandomSource } from '../helpers/pseudo-random.js'
import { digestOf, makeBlob, pushBlob, request, type Blob } from '../helpers/oci.js'
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js'
import { startTestServer, type TestServer } from '../helpers/server.js'

const MiB = 1024 * 1024
const repo = 's3/splice'
const linuxOnly = { skip: process.platform !== 'linux' && 'Linux only' }

/** A TCP relay to the store that, when armed, cuts each connection after that many response bytes. */
interface CuttingRelay {
  endpoint: string
  cutAfter: number | undefined
  close(): Promise<void>
}

async function startRelay(target: string): Promise<CuttingRelay> {
  const { hostname, port } = new URL(target)
  const sockets = new Set<Socket>()
  const relay: CuttingRelay = { endpoint: '', cutAfter: undefined, close: async () => undefined }
  const server: Server = createServer((client) => {
    const store = connect(Number(port), hostname)
    const cutAfter = relay.cutAfter
    let relayed = 0
    for (const socket of [client, store]) {
      sockets.add(socket)
      socket.on('error', () => undefined)
      socket.on('close', () => {
        sockets.delete(socket)
        client.destroy()
        store.destroy()
      })
    }
    client.pipe(store)
    store.on('data', (chunk: Buffer) => {
      relayed += chunk.length
      // The store goes away mid-body: the relay's socket to Ferry is reset.
      if (cutAfter !== undefined && relayed > cutAfter) return client.resetAndDestroy()
      if (!client.write(chunk)) store.pause()
    })
    client.on('drain', () => store.resume())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  relay.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  relay.close = async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
  return relay
}

function helper(): NativeSendfile {
  const { native, problem } = nativeSendfile()
  if (!native) throw new Error(`the sendfile helper did not load: ${problem}`)
  return native
}

const openDescriptors = (): number => readdirSync('/proc/self/fd').length

let s3: S3TestServer
let relay: CuttingRelay
let server: TestServer
let blob: Blob
const path = (): string => `/v2/${repo}/blobs/${blob.digest}`

t.before(async () => {
  s3 = await startS3Server()
  relay = await startRelay(s3.endpoint)
  const behindRelay = {
    ...s3,
    endpoint: relay.endpoint,
    driverOptions: (prefix?: string) => ({ ...s3.driverOptions(prefix), endpoint: relay.endpoint }),
  }
  server = await startTestServer({ storage: 's3', s3: behindRelay })
  // Larger than what the socket buffers between the store, Ferry and a client hold.
  const source = new PseudoRandomSource('s3-splice')
  blob = makeBlob(Buffer.concat(Array.from({ length: 24 }, () => source.next(MiB))))
  await pushBlob(server, repo, blob)
})
t.teardown(async () => {
  await server?.close()
  await relay?.close()
  await s3?.close()
})

t.test('a whole blob GET is spliced from the store to the client, byte-exact', linuxOnly, async (t) => {
  const native = helper()
  const before = native.stats()
  const res = await request(server, path())
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-length'), String(blob.size))
  t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, 'byte-exact')
  t.equal(native.stats().splices, before.splices + 1, 'through a splice lane')
  await eventually(() => native.stats().lanes === 0, { message: 'no lane left open' })
})

t.test('a ranged GET is spliced: exactly the bytes asked for', linuxOnly, async (t) => {
  const native = helper()
  const before = native.stats()
  const [start, end] = [1000, 9 * MiB + 17]
  const res = await request(server, path(), { headers: { range: `bytes=${start}-${end}` } })
  t.equal(res.status, 206)
  t.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${blob.size}`)
  t.same(Buffer.from(await res.arrayBuffer()).equals(blob.bytes.subarray(start, end + 1)), true, 'byte-exact')
  t.equal(native.stats().splices, before.splices + 1, 'through a splice lane')
})

t.test('a client that leaves midway: the lane and every descriptor are let go, the next GET works', linuxOnly, async (t) => {
  const native = helper()
  const before = native.stats()
  const descriptors = openDescriptors()
  const client = connect(Number(new URL(server.url).port), '127.0.0.1')
  client.on('error', () => undefined)
  await once(client, 'connect')
  client.write(`GET ${path()} HTTP/1.1\r\nhost: ${server.host}\r\n\r\n`)
  let received = 0
  await new Promise<void>((resolve) => {
    client.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received > 2 * MiB) resolve()
    })
  })
  client.destroy()
  t.equal(native.stats().splices, before.splices + 1, 'it was spliced')
  await eventually(() => native.stats().lanes === 0, { message: 'no lane left open' })
  await eventually(() => openDescriptors() <= descriptors, { message: `descriptors back to ${descriptors}` })
  const res = await request(server, path())
  t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, 'the next GET is whole')
})

t.test('a store that stops mid-body: the client connection is cut, the next GET works', linuxOnly, async (t) => {
  const native = helper()
  const before = native.stats()
  relay.cutAfter = 3 * MiB
  const res = await request(server, path())
  t.equal(res.status, 200)
  await t.rejects(res.arrayBuffer(), 'the body breaks off instead of ending short')
  relay.cutAfter = undefined
  t.equal(native.stats().splices, before.splices + 1, 'it was spliced')
  await eventually(() => native.stats().lanes === 0, { message: 'no lane left open' })
  const again = await request(server, path())
  t.equal(digestOf(Buffer.from(await again.arrayBuffer())), blob.digest, 'the next GET is whole')
})

t.test('without a free lane the GET goes through JavaScript, byte-exact', linuxOnly, async (t) => {
  const native = helper()
  const before = native.stats()
  native.configure({ lanes: 0 })
  t.teardown(() => void native.configure({ lanes: before.maxLanes }))
  const res = await request(server, path())
  t.equal(digestOf(Buffer.from(await res.arrayBuffer())), blob.digest, 'byte-exact')
  const after = native.stats()
  t.equal(after.splices, before.splices, 'not spliced')
  t.ok(after.refused > before.refused, 'the helper refused the lane')
})

t.test('at most storage.s3.maxSockets connections of its own: past them, reads go through the SDK', linuxOnly, async (t) => {
  const native = helper()
  const onePerStore = {
    ...s3,
    endpoint: relay.endpoint,
    driverOptions: (prefix?: string) => ({ ...s3.driverOptions(prefix), endpoint: relay.endpoint, maxSockets: 1 }),
  }
  // The same bucket and keys as `server`: the blob is there.
  const capped = await startTestServer({ storage: 's3', s3: onePerStore })
  t.teardown(() => capped.close())
  const cappedPath = `${capped.url}${path()}`
  const before = native.stats()

  // A client that reads 1 MiB and then stops holds its connection to the store.
  const holder = connect(Number(new URL(capped.url).port), '127.0.0.1')
  holder.on('error', () => undefined)
  t.teardown(() => void holder.destroy())
  await once(holder, 'connect')
  holder.write(`GET ${path()} HTTP/1.1\r\nhost: ${capped.host}\r\n\r\n`)
  await new Promise<void>((resolve) => {
    let received = 0
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      if (received < MiB) return
      holder.pause()
      holder.removeListener('data', onData)
      resolve()
    }
    holder.on('data', onData)
  })
  t.equal(native.stats().splices, before.splices + 1, 'the first GET has the one connection, spliced')

  const second = await fetch(cappedPath)
  t.equal(digestOf(Buffer.from(await second.arrayBuffer())), blob.digest, 'a second GET meanwhile is whole')
  t.equal(native.stats().splices, before.splices + 1, 'and went through the SDK, not a connection of its own')

  holder.destroy()
  await eventually(() => native.stats().lanes === 0, { message: 'the held GET let go of its lane' })
  const third = await fetch(cappedPath)
  t.equal(digestOf(Buffer.from(await third.arrayBuffer())), blob.digest, 'a third GET is whole')
  t.equal(native.stats().splices, before.splices + 2, 'and had the connection again')
})
