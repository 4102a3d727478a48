// Starting and stopping everything the benchmark measures, on loopback: the compiled Ferry
// (plain registry or mirror), CNCF distribution (plain or proxy), and the bare Node file server.
// Each process writes its output to a log file in the work folder (not a pipe into this
// process, which would steal CPU from the load generator), is tracked here by PID, and is
// stopped by PID — SIGTERM, then SIGKILL — by stopAll() or when this process exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { get as httpsGet } from 'node:https'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { distributionBinary, freePort, parseAccessLine, type AccessLogEntry } from '../../test/helpers/distribution.js'
import { run } from '../../test/helpers/tools.js'
import { progress } from './stats.js'

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url))
const ferryLauncher = fileURLToPath(new URL('./ferry-child.mjs', import.meta.url))
const baselineEntry = fileURLToPath(new URL('../baseline-file-server.ts', import.meta.url))

/** The user the harness creates when a registry wants credentials (`htpasswd -Bbn bench bench`). */
export const benchCredentials = { username: 'bench', password: 'bench' }

export interface Server {
  /** Label in the tables, e.g. `ferry`, `distribution proxy`. */
  name: string
  /** http://127.0.0.1:PORT */
  url: string
  pid: number
  logFile: string
  /** Headers of reads (downloads, manifest loads): credentials only if anonymous reads were refused. */
  headers: Record<string, string>
  /** Headers of pushes (seeding, the upload scenario): credentials once an anonymous push was refused. */
  pushHeaders: Record<string, string>
  /** Extra curl arguments for downloads (`--cacert` of an HTTPS server). */
  curlArgs: string[]
  /** The access log so far (distribution only; [] for others). */
  accessLog(): AccessLogEntry[]
  stop(): Promise<void>
}

const running = new Set<ChildProcess>()

process.once('exit', () => {
  for (const child of running) {
    if (child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
})

/**
 * The harness's own processes: this one, its ancestors (npm, tsx) and every server it started,
 * with their descendants. Other processes' CPU use disturbs a measurement (see quiet.ts).
 */
export function ourPids(): Set<number> {
  const pids = new Set<number>([process.pid])
  for (let pid = process.ppid; pid > 1;) {
    pids.add(pid)
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    } catch {
      break
    }
  }
  for (const child of running) {
    if (child.pid === undefined) continue
    pids.add(child.pid)
    for (const pid of descendants(child.pid)) pids.add(pid)
  }
  return pids
}

function descendants(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((p) => p !== '')
      .map(Number)
    return children.flatMap((child) => [child, ...descendants(child)])
  } catch {
    return []
  }
}

/** Stops every server still running (by PID). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((child) => terminate(child)))
}

async function terminate(child: ChildProcess, killAfterMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    running.delete(child)
    return
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  process.kill(child.pid, 'SIGTERM')
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL')
  }, killAfterMs)
  await exited
  clearTimeout(timer)
  running.delete(child)
}

/** Starts a process tracked here (stopped by stopAll(), counted as ours by the quiet check); `ipc` adds a message channel. */
export function launch(
  command: string,
  args: string[],
  logFile: string,
  options: { env?: NodeJS.ProcessEnv; stdinPipe?: boolean; ipc?: boolean } = {},
): ChildProcess {
  const fd = openSync(logFile, 'a')
  try {
    const child = spawn(command, args, {
      cwd: projectRoot,
      env: options.env ?? process.env,
      stdio: [options.stdinPipe ? 'pipe' : 'ignore', fd, fd, ...(options.ipc ? (['ipc'] as const) : [])],
    })
    child.stdin?.on('error', () => {})
    running.add(child)
    child.once('exit', () => running.delete(child))
    return child
  } finally {
    closeSync(fd)
  }
}

async function waitForHttp(url: string, child: ChildProcess, logFile: string, timeoutMs = 20_000, ca?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${url}: process exited (${child.exitCode ?? child.signalCode})\n${tail(logFile)}`)
    }
    try {
      const status = ca === undefined ? await probeHttp(url) : await probeHttps(url, ca)
      if (status === 200 || status === 401) return
    } catch {
      // not listening yet
    }
    await sleep(50)
  }
  await terminate(child)
  throw new Error(`${url} did not answer within ${timeoutMs} ms\n${tail(logFile)}`)
}

async function probeHttp(url: string): Promise<number> {
  const response = await fetch(url, { signal: AbortSignal.timeout(1_000) })
  await response.arrayBuffer()
  return response.status
}

// fetch cannot be handed a CA: node:https can.
function probeHttps(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca: readFileSync(ca), timeout: 1_000 }, (response) => {
      response.resume()
      response.once('end', () => resolve(response.statusCode ?? 0))
    })
    req.once('timeout', () => req.destroy(new Error('timeout')))
    req.once('error', reject)
  })
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n')
  } catch {
    return ''
  }
}

/** The bench user's Basic credentials. */
export function basicAuthorization(): string {
  return `Basic ${Buffer.from(`${benchCredentials.username}:${benchCredentials.password}`).toString('base64')}`
}

/**
 * Makes `server` use the bench user's credentials if an anonymous `method path` is refused with
 * 401 (and logs it once): reads stay anonymous wherever the registry allows them.
 */
export async function ensureAccess(server: Server, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<void> {
  if (server.headers.authorization !== undefined) return
  const response = await fetch(`${server.url}${path}`, { method, headers })
  await response.arrayBuffer()
  if (response.status === 401) {
    server.headers.authorization = basicAuthorization()
    progress(`${server.name}: anonymous ${method} refused (401): using the bench user's credentials`)
  }
}

let serveHelp: string | undefined
/**
 * Whether this build of Ferry's `serve` has a flag: builds measured with BENCH_FERRY_DIST may
 * predate `--htpasswd` (a bench user, whose credentials are used after a 401) or
 * `--anonymous-pull` (pushed content private by default).
 */
function ferryHasFlag(flag: string): boolean {
  if (serveHelp === undefined) {
    const help = spawnSync(process.execPath, [ferryLauncher, 'serve', '--help'], { cwd: projectRoot, encoding: 'utf8', env: ferryEnv() })
    serveHelp = `${help.stdout}${help.stderr}`
  }
  return new RegExp(`${flag}\\b`).test(serveHelp)
}

async function htpasswdFile(dir: string): Promise<string> {
  const path = join(dir, 'htpasswd')
  if (!existsSync(path)) {
    const { stdout } = await run('htpasswd', ['-Bbn', benchCredentials.username, benchCredentials.password])
    await writeFile(path, `${stdout.trim()}\n`)
  }
  return path
}

/** BENCH_NODE_ARGS: extra node flags for Ferry and the file server (e.g. `--trace-gc`), split on spaces. */
function extraNodeArgs(): string[] {
  return (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((arg) => arg !== '')
}

/** The parent's environment without FERRY_* (an unknown one is fatal to Ferry's config loader). */
function ferryEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) if (!key.toUpperCase().startsWith('FERRY_')) env[key] = value
  return env
}

export interface FerryOptions {
  name: string
  /** Folder for the config, log and storage of this instance. */
  dir: string
  /** Mirror mode: the upstream registry's URL (named `up`, the default upstream). */
  upstream?: string
  /** Mirror mode: how long a tag's digest is reused, e.g. `1h` (Ferry's default is 5 min). */
  tagTtl?: string
  /** Run under `node --cpu-prof` writing here (default: BENCH_CPU_PROF, if set). */
  cpuProfDir?: string
  /** Serve HTTPS with this certificate (a self-signed one the curl clients trust); `http2` offers h2 in ALPN. */
  tls?: ServingCertificate & { http2: boolean }
  /** The `storage` section instead of a filesystem folder in `dir` (the S3 scenario's bucket). */
  storage?: Record<string, unknown>
  /** The `http` section, e.g. `{ sendfile: false }` (default: none, Ferry's defaults). */
  http?: Record<string, unknown>
}

/** A certificate and its key, as PEM files; the certificate is also the CA clients are given. */
export interface ServingCertificate {
  cert: string
  key: string
}

/** The compiled Ferry: `node bench/lib/ferry-child.mjs serve --config … --listen 127.0.0.1:PORT`. */
export async function startFerry(options: FerryOptions): Promise<Server> {
  await mkdir(options.dir, { recursive: true })
  const storage = join(options.dir, 'storage')
  const configFile = join(options.dir, 'ferry.yaml')
  const mirror = options.upstream
    ? { upstreams: [{ name: 'up', url: options.upstream, ...(options.tagTtl ? { tagTtl: options.tagTtl } : {}) }], defaultUpstream: 'up' }
    : { upstreams: [] }
  const tls = options.tls ? { tls: { cert: options.tls.cert, key: options.tls.key, http2: options.tls.http2 } } : {}
  const http = options.http ? { http: options.http } : {}
  await writeFile(configFile, stringify({ storage: options.storage ?? { filesystem: { path: storage } }, mirror, ...tls, ...http }))
  const extra = ferryHasFlag('--htpasswd') ? ['--htpasswd', await htpasswdFile(options.dir)] : []
  // Reads stay anonymous, as containerd's are and as distribution serves them here: the
  // pushed namespaces nodes pull from are opened with --anonymous-pull in such deployments.
  if (ferryHasFlag('--anonymous-pull')) extra.push('--anonymous-pull', '**')
  const cpuProfDir = options.cpuProfDir ?? (process.env.BENCH_CPU_PROF || undefined)
  const nodeArgs = [...extraNodeArgs(), ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [])]
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const logFile = join(options.dir, 'ferry.log')
    const child = launch(
      process.execPath,
      [...nodeArgs, ferryLauncher, 'serve', '--config', configFile, '--listen', `127.0.0.1:${port}`, ...extra],
      logFile,
      { env: { ...ferryEnv(), BENCH_EXIT_WITH_PARENT: '1' }, stdinPipe: true },
    )
    const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`
    try {
      await waitForHttp(`${url}/v2/`, child, logFile, undefined, options.tls?.cert)
    } catch (err) {
      if (attempt >= 2) throw err
      continue
    }
    // Requests start anonymous, as containerd's pulls do; a 401 switches that server to the
    // bench user's credentials (http.ts, and the manifest scenario's probe).
    progress(`${options.name}: ${extra.length > 0 ? 'started with --htpasswd (user bench)' : 'no accounts'}`)
    return server(options.name, url, child, logFile, {}, false, options.tls?.cert)
  }
}

export interface DistributionOptions {
  name: string
  dir: string
  /** Pull-through mode in front of this registry URL. */
  proxyOf?: string
  /** Serve HTTPS with this certificate (`http.tls`). */
  tls?: ServingCertificate
}

/** CNCF distribution (`/usr/bin/docker-registry serve`), logging (access log included) to a file. */
export async function startDistribution(options: DistributionOptions): Promise<Server> {
  await mkdir(options.dir, { recursive: true })
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const config: Record<string, unknown> = {
      version: 0.1,
      log: { level: 'info', accesslog: { disabled: false } },
      storage: { filesystem: { rootdirectory: join(options.dir, 'data') }, delete: { enabled: true } },
      http: {
        addr: `127.0.0.1:${port}`,
        secret: 'ferry-bench-secret',
        ...(options.tls ? { tls: { certificate: options.tls.cert, key: options.tls.key } } : {}),
      },
      ...(options.proxyOf ? { proxy: { remoteurl: options.proxyOf } } : {}),
    }
    const configFile = join(options.dir, 'config.yml')
    await writeFile(configFile, stringify(config))
    const logFile = join(options.dir, 'distribution.log')
    const child = launch(distributionBinary, ['serve', configFile], logFile)
    const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`
    try {
      await waitForHttp(`${url}/v2/`, child, logFile, undefined, options.tls?.cert)
    } catch (err) {
      if (attempt >= 2) throw err
      continue
    }
    return server(options.name, url, child, logFile, {}, true, options.tls?.cert)
  }
}

/** bench/baseline-file-server.ts serving the files of `root`: the ceiling of Node on this machine. */
export async function startBaseline(name: string, root: string, dir: string): Promise<Server> {
  await mkdir(dir, { recursive: true })
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const logFile = join(dir, 'baseline.log')
    const child = launch(process.execPath, [...extraNodeArgs(), '--import', 'tsx', baselineEntry, root, `127.0.0.1:${port}`], logFile, {
      env: { ...process.env, BENCH_EXIT_WITH_PARENT: '1' },
      stdinPipe: true,
    })
    const url = `http://127.0.0.1:${port}`
    try {
      await waitForHttp(`${url}/healthz`, child, logFile)
    } catch (err) {
      if (attempt >= 2) throw err
      continue
    }
    return server(name, url, child, logFile, {})
  }
}

function server(
  name: string,
  url: string,
  child: ChildProcess,
  logFile: string,
  headers: Record<string, string>,
  accessLogged = false,
  ca?: string,
): Server {
  return {
    name,
    url,
    pid: child.pid ?? -1,
    logFile,
    headers,
    pushHeaders: { ...headers },
    curlArgs: ca === undefined ? [] : ['--cacert', ca],
    accessLog: () => (accessLogged ? parseAccessLog(logFile) : []),
    stop: () => terminate(child),
  }
}

function parseAccessLog(file: string): AccessLogEntry[] {
  const entries: AccessLogEntry[] = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const entry = parseAccessLine(line)
    if (entry) entries.push(entry)
  }
  return entries
}
