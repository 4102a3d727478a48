// Runs CNCF distribution (`docker-registry`, 2.8) as a real upstream for tests: its own config,
// storage and port under a temp dir, optional htpasswd Basic auth or pull-through mode, and its
// access log parsed so a test can count what reached it. With `tls` it serves HTTPS (and with
// `clientCas` requires client certificates); restart() swaps the certificate on the same port
// and storage, as an upstream's operator rotating to a new CA would.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { eventually } from './eventually.js'
import { freePort } from './ports.js'
import { missingTools, run } from './tools.js'

export { freePort }

export const distributionBinary = '/usr/bin/docker-registry'

export interface DistributionOptions {
  /** Pull-through mode: the remote registry's URL, with optional Bearer-realm credentials. */
  proxyOf?: string | { url: string; username?: string; password?: string }
  /**
   * `htpasswd`: Basic auth with `users` (default `{ user: 'pass' }`); `token`: Docker token auth
   * with `token` (JWTs from the test's own token server). Default `none`.
   */
  auth?: 'none' | 'htpasswd' | 'token'
  users?: Record<string, string>
  token?: DistributionTokenAuth
  /** Serve HTTPS with this certificate (chain) and key; `clientCas` makes client certificates required. */
  tls?: DistributionTls
  /** Merged over the generated config, for anything else. */
  config?: Record<string, unknown>
  startTimeoutMs?: number
}

/** distribution's `auth.token`: it accepts JWTs whose x5c chains to `rootCertBundle` (a PEM file). */
export interface DistributionTokenAuth {
  realm: string
  service: string
  issuer: string
  rootCertBundle: string
}

export interface DistributionTls {
  certificate: string
  key: string
  /** CA bundles client certificates must chain to (http.tls.clientcas): mTLS. */
  clientCas?: string[]
}

/** One request as distribution's combined-format access log recorded it. */
export interface AccessLogEntry {
  method: string
  /** Path and query, e.g. `/v2/foo/blobs/sha256:…`. */
  path: string
  status: number
  bytes: number
  userAgent: string
}

export interface Distribution {
  /** http://127.0.0.1:PORT, or https:// with `tls`. */
  url: string
  /** 127.0.0.1:PORT */
  host: string
  pid: number
  /** Configured users (htpasswd auth), name → password. */
  users: Record<string, string>
  /** The raw access-log lines so far. */
  accessLog(): string[]
  /** The access log parsed. */
  requests(): AccessLogEntry[]
  /**
   * The access log parsed, once every request answered so far is in it: log lines follow their
   * responses, so a marker request is sent and awaited in the log first (it is left out).
   */
  loggedRequests(): Promise<AccessLogEntry[]>
  /** Everything the process wrote. */
  output(): string
  /** The file of a storage path (`docker/registry/v2/…`) under its filesystem storage. */
  storagePath(path: string): string
  /** SIGTERM, SIGKILL after 5 s, then removes the temp dir. Idempotent. */
  stop(): Promise<void>
  /**
   * Stops the process and starts it again on the same port and storage, with `tls` (undefined:
   * plain HTTP). Seed over plain HTTP, then restart with TLS. Returns the new handle.
   */
  restart(tls: DistributionTls | undefined): Promise<Distribution>
}

/** Why distribution-backed tests cannot run here, or undefined when they can. */
export function distributionUnavailable(): string | undefined {
  const missing = missingTools('docker-registry')
  return missing.length > 0 ? `needs ${missing.join(', ')} (apt-get install docker-registry)` : undefined
}

const accessLine = /^(\S+) \S+ \S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "([^"]*)"/

export function parseAccessLine(line: string): AccessLogEntry | undefined {
  const match = accessLine.exec(line)
  if (!match) return undefined
  return {
    method: match[2]!,
    path: match[3]!,
    status: Number(match[4]),
    bytes: match[5] === '-' ? 0 : Number(match[5]),
    userAgent: match[6]!,
  }
}

export async function startDistribution(options: DistributionOptions = {}): Promise<Distribution> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-distribution-'))
  try {
    const users = options.auth === 'htpasswd' ? (options.users ?? { user: 'pass' }) : {}
    const config = await buildConfig(dir, options, users)
    // The free port can be taken between probing and binding: try a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        return await launch(dir, config, await freePort(), users, options.startTimeoutMs ?? 60_000, options.tls)
      } catch (err) {
        if (attempt >= 2) throw err
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

async function buildConfig(dir: string, options: DistributionOptions, users: Record<string, string>): Promise<Record<string, unknown>> {
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: join(dir, 'data') }, delete: { enabled: true } },
    // A fixed secret avoids the startup warning and keeps upload state valid across restarts.
    http: { addr: '', secret: 'ferry-test-secret' },
  }
  if (options.auth === 'htpasswd') {
    const lines = await Promise.all(
      Object.entries(users).map(async ([name, password]) => (await run('htpasswd', ['-Bbn', name, password])).stdout.trim()),
    )
    const path = join(dir, 'htpasswd')
    await writeFile(path, `${lines.join('\n')}\n`)
    config.auth = { htpasswd: { realm: 'ferry-test', path } }
  }
  if (options.auth === 'token') {
    if (options.token === undefined) throw new Error("auth: 'token' needs the token option")
    const { realm, service, issuer, rootCertBundle } = options.token
    config.auth = { token: { realm, service, issuer, rootcertbundle: rootCertBundle } }
  }
  if (options.proxyOf !== undefined) {
    const proxy = typeof options.proxyOf === 'string' ? { url: options.proxyOf } : options.proxyOf
    config.proxy = { remoteurl: proxy.url, ...(proxy.username ? { username: proxy.username, password: proxy.password ?? '' } : {}) }
  }
  return { ...config, ...options.config }
}

async function launch(
  dir: string,
  base: Record<string, unknown>,
  port: number,
  users: Record<string, string>,
  timeoutMs: number,
  tls: DistributionTls | undefined,
): Promise<Distribution> {
  const host = `127.0.0.1:${port}`
  const tlsConfig = tls && { certificate: tls.certificate, key: tls.key, ...(tls.clientCas ? { clientcas: tls.clientCas } : {}) }
  const config = { ...base, http: { ...(base.http as object), addr: host, ...(tlsConfig ? { tls: tlsConfig } : {}) } }
  const configPath = join(dir, 'config.yml')
  await writeFile(configPath, stringify(config))
  const child = spawn(distributionBinary, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)

  let output = ''
  const lines: string[] = []
  let pending = ''
  const collect = (chunk: string): void => {
    output += chunk
    pending += chunk
    let nl: number
    while ((nl = pending.indexOf('\n')) >= 0) {
      lines.push(pending.slice(0, nl))
      pending = pending.slice(nl + 1)
    }
  }
  child.stdout.setEncoding('utf8').on('data', collect)
  child.stderr.setEncoding('utf8').on('data', collect)

  let stopping: Promise<void> | undefined
  let restarted = false
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await terminate(child)
      process.removeListener('exit', killOnExit)
      if (!restarted) await rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }
  const restart = async (next: DistributionTls | undefined): Promise<Distribution> => {
    restarted = true
    await stop()
    return launch(dir, base, port, users, timeoutMs, next)
  }
  const url = `${tls ? 'https' : 'http'}://${host}`
  try {
    await (tls ? waitUntilListening(port, child, timeoutMs) : waitUntilServing(url, child, timeoutMs))
  } catch (err) {
    await terminate(child)
    process.removeListener('exit', killOnExit)
    throw new Error(`${(err as Error).message}\n--- docker-registry output ---\n${output}`, { cause: err })
  }
  const accessLog = (): string[] => lines.filter((line) => accessLine.test(line))
  const requests = (): AccessLogEntry[] => accessLog().map((line) => parseAccessLine(line)!)
  const loggedRequests = async (): Promise<AccessLogEntry[]> => {
    if (tls) throw new Error('loggedRequests() sends its marker over plain HTTP')
    const marker = `/v2/ferry-test-marker/manifests/m${randomBytes(6).toString('hex')}`
    await (await fetch(`${url}${marker}`)).arrayBuffer()
    await eventually(() => requests().some((r) => r.path === marker), { message: `${marker} in the access log` })
    return requests().filter((r) => r.path !== marker)
  }
  return {
    url,
    host,
    pid: child.pid ?? -1,
    users,
    accessLog,
    requests,
    loggedRequests,
    output: () => output,
    storagePath: (path) => join(dir, 'data', path),
    stop,
    restart,
  }
}

// Over TLS (client certificates perhaps required) a TCP accept is the readiness signal: the
// listener is bound just before it serves.
async function waitUntilListening(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode})`)
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await sleep(50)
  }
  throw new Error(`docker-registry did not listen on port ${port} within ${timeoutMs} ms`)
}

async function waitUntilServing(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode})`)
    try {
      const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1_000) })
      await response.arrayBuffer()
      // 401 is a healthy answer from a registry with auth enabled.
      if (response.status === 200 || response.status === 401) return
    } catch {
      // Not listening yet.
    }
    await sleep(50)
  }
  throw new Error(`docker-registry did not answer ${url}/v2/ within ${timeoutMs} ms`)
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
