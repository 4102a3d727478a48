// Runs Ferry as a real, separate process (the CLI from source, under tsx), so end-to-end tests
// see what users see: the real config loader, logger, signals, and a process whose RSS is
// Ferry's alone. The URL comes from the 'ferry started' JSON log line, so `--listen 127.0.0.1:0`
// works without guessing a free port.
//
// With FERRY_TEST_STORAGE=s3 in the test's environment, a Ferry started without storage settings
// of its own serves from S3 instead: an s3rver in this process (one per test process, shared),
// under a key prefix named after the `--storage` folder, so a restart on the same folder finds
// its data again and two Ferry processes on two folders stay apart.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { startS3Server, type S3TestServer } from './s3-server.js'

const entry = fileURLToPath(new URL('./run-ferry.ts', import.meta.url))
const projectRoot = fileURLToPath(new URL('../../', import.meta.url))

export interface FerryProcess {
  /** http://127.0.0.1:PORT */
  url: string
  /** 127.0.0.1:PORT, as skopeo wants it. */
  host: string
  pid: number
  /** Everything the child wrote so far, stdout and stderr interleaved. */
  logs(): string
  /** SIGTERM, then SIGKILL after killAfterMs; resolves once the child has exited. Idempotent. */
  stop(killAfterMs?: number): Promise<void>
}

export interface StartOptions {
  /** Extra environment; FERRY_* variables of the test runner are NOT inherited. */
  env?: Record<string, string>
  startTimeoutMs?: number
}

/** Spawns `ferry <args>` and waits for the 'ferry started' log line. */
export async function startFerryProcess(args: string[], options: StartOptions = {}): Promise<FerryProcess> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.toUpperCase().startsWith('FERRY_')) env[k] = v
  }
  // Not measured by `npm run coverage`: V8 coverage of code loaded through tsx maps each file to
  // one covered line (tsx#433), which would replace the in-process coverage of the same files.
  if (process.env.FERRY_TEST_STORAGE === 's3' && options.env?.FERRY_STORAGE_DRIVER === undefined) {
    Object.assign(env, s3Environment(await sharedS3Server(), args))
  }
  Object.assign(env, options.env, { RUN_FERRY_EXIT_WITH_PARENT: '1', _TAPJS_PROCESSINFO_COVERAGE_: '0' })
  // stdin stays open for the child's lifetime: it closes when this process dies, however it dies.
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
    cwd: projectRoot,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  child.stdin.on('error', () => {})
  const stopper = processStopper(child)
  // Make sure an aborted test run never leaves a registry behind.
  const onExit = (): void => void child.kill('SIGKILL')
  process.once('exit', onExit)
  child.once('exit', () => process.removeListener('exit', onExit))

  let output = ''
  const timeoutMs = options.startTimeoutMs ?? 90_000
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let pending = ''
      const timer = setTimeout(() => reject(new Error(`ferry did not start within ${timeoutMs} ms`)), timeoutMs)
      const done = (err: Error | undefined, value?: string): void => {
        clearTimeout(timer)
        if (err) reject(err)
        else resolve(value ?? '')
      }
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
        pending += chunk
        let nl: number
        while ((nl = pending.indexOf('\n')) >= 0) {
          const line = pending.slice(0, nl)
          pending = pending.slice(nl + 1)
          const url = startedUrl(line)
          if (url !== undefined) done(undefined, url)
        }
      })
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
      })
      child.once('error', (err) => done(err))
      child.once('exit', (code, signal) => done(new Error(`ferry exited before starting (code ${code}, signal ${signal})`)))
    })
    const host = new URL(url).host
    return { url, host, pid: child.pid ?? -1, logs: () => output, stop: stopper }
  } catch (err) {
    await stopper(2_000)
    const message = err instanceof Error ? err.message : String(err)
    throw new Error(`${message}\n--- ferry output ---\n${output}`, { cause: err })
  }
}

function startedUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const record = JSON.parse(line) as { msg?: unknown; url?: unknown }
    return record.msg === 'ferry started' && typeof record.url === 'string' ? record.url : undefined
  } catch {
    return undefined
  }
}

function processStopper(child: ChildProcess): (killAfterMs?: number) => Promise<void> {
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  }).then(() => void child.stdin?.destroy())
  let stopping: Promise<void> | undefined
  return (killAfterMs = 10_000) => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
      await exited
      clearTimeout(timer)
    })()
    return stopping
  }
}

let s3Server: Promise<S3TestServer> | undefined

/** The test process's s3rver: started on first use, never holding the process open, gone at exit. */
function sharedS3Server(): Promise<S3TestServer> {
  s3Server ??= startS3Server('ferry-e2e').then((server) => {
    server.unref()
    process.once('exit', () => server.removeSync())
    return server
  })
  return s3Server
}

/** FERRY_STORAGE_* settings for `server`, under a prefix of the `--storage` folder (or of its own). */
function s3Environment(server: S3TestServer, args: string[]): Record<string, string> {
  const at = args.indexOf('--storage')
  const folder = at >= 0 ? args[at + 1] : undefined
  const prefix = createHash('sha256')
    .update(folder ?? `${process.pid}-${Math.random()}`)
    .digest('hex')
    .slice(0, 16)
  return {
    FERRY_STORAGE_DRIVER: 's3',
    FERRY_STORAGE_S3_BUCKET: server.bucket,
    FERRY_STORAGE_S3_PREFIX: prefix,
    FERRY_STORAGE_S3_ENDPOINT: server.endpoint,
    FERRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    FERRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
    FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
    FERRY_STORAGE_S3_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
  }
}
