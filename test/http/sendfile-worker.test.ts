// The sendfile helper keeps its state per JavaScript environment (native/sendfile.c): worker
// threads that load it get loops, limits and completions of their own, send files at the same
// time as the main thread, and leave nothing running when they exit.
import { randomBytes, createHash } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, openSync, readdirSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { nativeSendfile } from '../../src/transfer/native-sendfile.js'

const MiB = 1024 * 1024

// Plain JavaScript, run as a worker and on the main thread: sends `file` over a loopback TCP
// connection through the helper and resolves what arrived (its sha256) and the helper's stats.
const sendOverLoopback = `
  function sendOverLoopback(native, net, crypto, fs, file, size) {
    return new Promise((resolve, reject) => {
      let outcome, digest
      const finish = () => outcome && digest && resolve({ ...outcome, digest })
      const server = net.createServer((socket) => {
        const fd = fs.openSync(file, 'r')
        const lane = native.open(socket._handle.fd, fd, 0)
        // The helper has its own duplicate: the caller's descriptor may close at once.
        fs.closeSync(fd)
        if (!lane) return reject(new Error('no lane'))
        lane.send(0, size, (error, sent) => {
          outcome = { error, sent, stats: native.stats() }
          lane.close()
          socket.end()
          server.close()
          finish()
        })
      })
      server.listen(0, '127.0.0.1', () => {
        const client = net.connect(server.address().port, '127.0.0.1')
        const hash = crypto.createHash('sha256')
        client.on('data', (chunk) => hash.update(chunk))
        client.on('end', () => {
          digest = hash.digest('hex')
          finish()
        })
      })
    })
  }
`

const workerSource = `
  const { parentPort, workerData } = require('node:worker_threads')
  const native = require(workerData.path)
  ${sendOverLoopback}
  // Limits of this thread only: the main thread keeps its own.
  native.configure({ threads: 2, lanes: 8 })
  sendOverLoopback(native, require('node:net'), require('node:crypto'), require('node:fs'), workerData.file, workerData.size)
    .then((outcome) => parentPort.postMessage(outcome))
`

t.test('worker threads load the helper and send files of their own', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const { native, path } = nativeSendfile()
  if (!native || !path) return t.fail('the helper did not load')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sendfile-worker-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const bytes = randomBytes(6 * MiB + i)
      const file = join(dir, `blob-${i}`)
      await writeFile(file, bytes)
      return { file, size: bytes.length, digest: createHash('sha256').update(bytes).digest('hex') }
    }),
  )
  const mainLimits = native.stats()

  const run = async (workerData: (typeof files)[number] & { path: string }): Promise<Record<string, unknown>> => {
    const worker = new Worker(workerSource, { eval: true, workerData })
    const [outcome] = (await once(worker, 'message')) as [Record<string, unknown>]
    const [code] = (await once(worker, 'exit')) as [number]
    return { ...outcome, code }
  }
  // The main thread sends at the same time as two workers.
  const onMain = new Function(
    'native',
    'net',
    'crypto',
    'fs',
    'file',
    'size',
    `${sendOverLoopback}; return sendOverLoopback(native, net, crypto, fs, file, size)`,
  )
  const [first, second, main] = await Promise.all([
    run({ ...files[0]!, path }),
    run({ ...files[1]!, path }),
    onMain(
      native,
      await import('node:net'),
      await import('node:crypto'),
      await import('node:fs'),
      files[2]!.file,
      files[2]!.size,
    ) as Promise<Record<string, unknown>>,
  ])
  for (const [name, outcome, file] of [
    ['first worker', first, files[0]!],
    ['second worker', second, files[1]!],
  ] as const) {
    t.equal(outcome.error, null, `${name}: no error`)
    t.equal(outcome.sent, file.size, `${name}: every byte`)
    t.equal(outcome.digest, file.digest, `${name}: the exact bytes`)
    t.match(outcome.stats, { maxThreads: 2, maxLanes: 8, lanes: 1 }, `${name}: its own limits and lanes`)
    t.equal(outcome.code, 0, `${name}: exits cleanly (its loops stopped)`)
  }
  t.equal(main.digest, files[2]!.digest, 'the main thread: the exact bytes')
  t.match(
    native.stats(),
    { maxThreads: mainLimits.maxThreads, maxLanes: mainLimits.maxLanes, lanes: 0 },
    "the workers' limits are their own",
  )
})

// A worker that stops with sends still running (its client reads nothing): the helper's teardown
// stops that worker's loops and closes what they held, and nothing reports into the gone thread.
const stalledWorkerSource = `
  const { parentPort, workerData } = require('node:worker_threads')
  const net = require('node:net')
  const fs = require('node:fs')
  const native = require(workerData.path)
  const server = net.createServer((socket) => {
    const fd = fs.openSync(workerData.file, 'r')
    const lane = native.open(socket._handle.fd, fd, 0)
    fs.closeSync(fd)
    lane.send(0, workerData.size, () => parentPort.postMessage('reported'))
    if (native.stats().lanes === 4) parentPort.postMessage('stalled')
  })
  server.listen(0, '127.0.0.1', () => {
    // Clients that never read: the sends fill the socket buffers and wait.
    for (let i = 0; i < 4; i++) net.connect(server.address().port, '127.0.0.1').pause()
  })
`

t.test(
  'a worker terminated mid-send leaves the process and the helper working',
  { skip: process.platform !== 'linux' && 'Linux only' },
  async (t) => {
    const { native, path } = nativeSendfile()
    if (!native || !path) return t.fail('the helper did not load')
    const dir = await mkdtemp(join(tmpdir(), 'ferry-sendfile-worker-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const bytes = randomBytes(32 * MiB)
    const file = join(dir, 'blob')
    await writeFile(file, bytes)
    const threads = (): number => readdirSync('/proc/self/task').length
    const descriptors = (): number => readdirSync('/proc/self/fd').length
    const before = { threads: threads(), descriptors: descriptors() }
    const worker = new Worker(stalledWorkerSource, { eval: true, workerData: { path, file, size: bytes.length } })
    const messages: unknown[] = []
    worker.on('message', (message) => messages.push(message))
    await new Promise<void>((resolve) => worker.on('message', (message) => message === 'stalled' && resolve()))
    await worker.terminate()
    t.notOk(messages.includes('reported'), 'the sends were still running when the worker stopped')
    // Without the teardown its loop threads would wait forever, holding the sockets and files.
    const deadline = Date.now() + 30_000
    while ((threads() > before.threads || descriptors() > before.descriptors) && Date.now() < deadline) await delay(50)
    t.ok(threads() <= before.threads, `the worker's loop threads stopped (${threads()} threads, ${before.threads} before)`)
    t.ok(descriptors() <= before.descriptors, `its descriptors are closed (${descriptors()}, ${before.descriptors} before)`)
    // The main thread's helper goes on as before.
    const lanesBefore = native.stats().lanes
    const { createServer, connect } = await import('node:net')
    const digest = await new Promise<string>((resolve) => {
      const server = createServer((socket) => {
        const fd = openSync(file, 'r')
        const lane = native.open((socket as unknown as { _handle: { fd: number } })._handle.fd, fd, 0)!
        closeSync(fd)
        lane.send(0, bytes.length, () => {
          lane.close()
          socket.end()
          server.close()
        })
      })
      server.listen(0, '127.0.0.1', () => {
        const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
        const hash = createHash('sha256')
        client.on('data', (chunk: Buffer) => hash.update(chunk))
        client.on('end', () => resolve(hash.digest('hex')))
      })
    })
    t.equal(digest, createHash('sha256').update(bytes).digest('hex'), 'a send on the main thread afterwards is whole')
    t.equal(native.stats().lanes, lanesBefore, 'and its lane is freed')
  },
)
