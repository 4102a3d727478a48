// How `ferry serve` ends, through the real CLI process: after a SIGTERM an idle server exits by
// its event loop running dry (nothing left holding it, so no forced exit is needed), and a log
// reader that stopped reading or went away cannot keep it from exiting.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'

const entry = fileURLToPath(new URL('../helpers/run-ferry.ts', import.meta.url))
const reportExit = fileURLToPath(new URL('./fixtures/report-process-exit.mjs', import.meta.url))
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

type Child = ChildProcessByStdio<Writable, Readable, Readable>

interface Running {
  child: Child
  url: string
  stdout(): string
  stderr(): string
  /** Resolves with how the process ended; SIGKILLed if it has not after `boundMs`. */
  exited(boundMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

async function start(t: Test, extraArgs: string[] = []): Promise<Running> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.toUpperCase().startsWith('FERRY_')) env[k] = v
  const args = [
    '--import',
    reportExit,
    '--import',
    'tsx',
    entry,
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--storage',
    t.testdir(),
    ...extraArgs,
  ]
  const child = spawn(process.execPath, args, {
    cwd: projectRoot,
    env: { ...env, RUN_FERRY_EXIT_WITH_PARENT: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stdin.on('error', () => {})
  child.stdout.on('error', () => {})
  let stdout = ''
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(() => void child.kill('SIGKILL'))
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      stdout += chunk.toString('utf8')
      const started = /"url":"([^"]+)","version":"[^"]*","msg":"ferry started"/.exec(stdout)
      if (started) {
        child.stdout.off('data', onData)
        resolve(started[1]!)
      }
    }
    child.stdout.on('data', onData)
    void ended.then(() => reject(new Error(`ferry exited before starting: ${stderr}`)))
  })
  return {
    child,
    url,
    stdout: () => stdout,
    stderr: () => stderr,
    exited: async (boundMs = 60_000) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), boundMs)
      const result = await ended
      clearTimeout(timer)
      return result
    },
  }
}

t.test('an idle server exits after SIGTERM by running dry, with no forced exit', async (t) => {
  const ferry = await start(t)
  child_read(ferry)
  // A served request leaves a keep-alive connection behind, as any client does.
  const agent = new Agent()
  const answer = await request(`${ferry.url}/v2/`, { dispatcher: agent })
  await answer.body.dump()
  ferry.child.kill('SIGTERM')
  const { code, signal } = await ferry.exited()
  await agent.close()
  t.same({ code, signal }, { code: 0, signal: null }, 'exit status 0')
  t.match(ferry.stdout(), /"msg":"stopped"/)
  t.notMatch(ferry.stdout(), /still busy after shutdown/, 'nothing held the event loop after "stopped"')
  t.notMatch(ferry.stderr(), /process\.exit\(/, 'the process was not made to exit')
})

t.test('a log reader that stops reading and goes away cannot keep Ferry from exiting', async (t) => {
  const ferry = await start(t)
  // The reader has what it wanted (as `ferry serve | head -1` does) and reads no more: every
  // request adds an access line until the pipe is full and lines queue in Ferry.
  ferry.child.stdout.pause()
  const agent = new Agent({ connections: 8 })
  t.teardown(() => agent.close())
  for (let batch = 0; batch < 50; batch++) {
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        const answer = await request(`${ferry.url}/v2/`, { dispatcher: agent })
        await answer.body.dump()
      }),
    )
  }
  ferry.child.kill('SIGTERM')
  ferry.child.stdout.destroy() // and now the reader is gone
  const { signal } = await ferry.exited()
  t.not(signal, 'SIGKILL', 'it exited on its own')
})

// Keeps reading stdout after the start line, as a log shipper does.
function child_read(ferry: Running): void {
  let more = ''
  ferry.child.stdout.setEncoding('utf8').on('data', (chunk: string) => (more += chunk))
  const before = ferry.stdout
  ferry.stdout = () => before() + more
}
