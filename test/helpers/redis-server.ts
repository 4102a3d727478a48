// A real redis-server for tests: on a loopback port, no persistence, in a temp folder; stopped
// by its PID. `redis-server` is a Debian package (scripts/install-test-deps.sh installs it).
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onFreePort } from './ports.js'

export interface RedisTestServer {
  /** redis://127.0.0.1:PORT */
  url: string
  pid: number
  output(): string
  stop(): Promise<void>
}

export async function startRedisServer(): Promise<RedisTestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redis-'))
  try {
    return await onFreePort((port) => launch(dir, port))
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

async function launch(dir: string, port: number): Promise<RedisTestServer> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const onExit = (): void => void child.kill('SIGKILL')
  process.once('exit', onExit)
  let output = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`redis-server did not start:\n${output}`))
    }, 30_000)
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8')
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.once('exit', (code) => {
      process.removeListener('exit', onExit)
      clearTimeout(timer)
      reject(new Error(`redis-server exited (${code}):\n${output}`))
    })
  })
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid ?? -1,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
      process.removeListener('exit', onExit)
      await rm(dir, { recursive: true, force: true })
    },
  }
}
