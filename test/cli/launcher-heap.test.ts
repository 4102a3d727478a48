// bin/ferry.js holds V8's young generation at its initial size while the modules load and `serve`
// composes the app (#18): without that, V8 grows it to 16 MiB per semi-space during start-up and an
// idle server keeps those pages for good. Once it listens, serve lets them grow only to 4 MiB
// each: a load grew them to 16 MiB, which stayed in every peak and after it. Read from the
// server's own /metrics (prom-client's heap space gauges).
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pushBlob } from '../helpers/seed.js'
import { startTestServer } from '../helpers/server.js'

const MiB = 1024 * 1024
const bin = join(import.meta.dirname, '..', '..', 'bin', 'ferry.js')

/** `ferry serve` through the launcher, as users start it; its URL once it logs 'ferry started'. */
async function startServe(t: Test, args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.toUpperCase().startsWith('FERRY_')) env[key] = value
  const child = spawn(process.execPath, [bin, 'serve', '--listen', '127.0.0.1:0', '--storage', t.testdir({}), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
  })
  return new Promise<string>((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => reject(new Error(`ferry did not start:\n${output}`)), 120_000)
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const started = /"url":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"ferry started"/.exec(output)
      if (started) {
        clearTimeout(timer)
        resolve(started[1]!)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`ferry exited (${code}):\n${output}`))
    })
  })
}

async function newSpaceBytes(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text()
  return Number(/^ferry_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics)?.[1])
}

t.test('the launcher starts serve with the young generation at its initial size', async (t) => {
  const url = await startServe(t, [])
  const newSpace = await newSpaceBytes(url)
  t.ok(newSpace > 0, 'the new space is reported')
  // Held: two semi-spaces of 1 MiB (2-8 MiB once this first request let it grow after start).
  // Grown during start-up, as without the launcher's hold: 32 MiB.
  t.ok(newSpace < 16 * MiB, `new space ${(newSpace / MiB).toFixed(1)} MiB after start`)
})

t.test('under load serve lets the young generation grow to its bound, not beyond', async (t) => {
  const upstream = await startTestServer()
  t.teardown(() => upstream.close())
  const size = 32 * MiB
  const digest = await pushBlob(upstream.url, 'library/big', randomBytes(size))
  const url = await startServe(t, ['--upstream', `up=${upstream.url}`, '--default-upstream', 'up'])
  // A cold fill followed by 8 clients: enough surviving objects for V8 to grow the semi-spaces
  // to 8 MiB each at least (new space 16 MiB) when nothing bounds them.
  const received = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const response = await fetch(`${url}/v2/library/big/blobs/${digest}`)
      let bytes = 0
      for await (const chunk of response.body!) bytes += (chunk as Uint8Array).length
      return bytes
    }),
  )
  t.same(new Set(received), new Set([size]), 'every client got the whole blob')
  const newSpace = await newSpaceBytes(url)
  t.ok(newSpace > 0, 'the new space is reported')
  t.ok(newSpace <= 8 * MiB, `new space ${(newSpace / MiB).toFixed(1)} MiB after the load (bound: 2 × 4 MiB)`)
})
