// The sendfile helper keeps its state per JavaScript environment (native/sendfile.c): worker
// threads that load it get loops, limits and completions of their own, send files at the same
// time as the main thread, and leave nothing running when they exit.
import { randomBytes, createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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
