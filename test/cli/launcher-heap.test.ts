// bin/ferry.js holds V8's young generation at its initial size while the modules load and `serve`
// composes the app (#18): without that, V8 grows it to 16 MiB per semi-space during start-up and an
// idle server keeps those pages for good. Read from the server's own /metrics (prom-client's heap
// space gauges) right after it started.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'

const MiB = 1024 * 1024
const bin = join(import.meta.dirname, '..', '..', 'bin', 'ferry.js')

t.test('the launcher starts serve with the young generation at its initial size', async (t) => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.toUpperCase().startsWith('FERRY_')) env[key] = value
  const child = spawn(process.execPath, [bin, 'serve', '--listen', '127.0.0.1:0', '--storage', t.testdir({})], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
  })
  const url = await new Promise<string>((resolve, reject) => {
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
  const metrics = await (await fetch(`${url}/metrics`)).text()
  const newSpace = Number(/^ferry_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(metrics)?.[1])
  t.ok(newSpace > 0, 'the new space is reported')
  // Held: two semi-spaces of 1 MiB (2-8 MiB once this first request let it grow after start).
  // Grown during start-up, as without the launcher's hold: 32 MiB.
  t.ok(newSpace < 16 * MiB, `new space ${(newSpace / MiB).toFixed(1)} MiB after start`)
})
