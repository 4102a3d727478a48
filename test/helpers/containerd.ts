// Runs a private containerd 1.6 daemon for end-to-end tests: its own root, state, opt folder and
// gRPC/ttrpc sockets under a temp dir (nothing under /var/lib, /run or /opt is touched), content
// isolated per namespace, the CRI plugin off. `ctr` drives it. Needs root (containerd mounts
// snapshots while unpacking).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { missingTools, run, type RunResult } from './tools.js'

export interface PullOptions {
  /** Folder holding `<registry host>/hosts.toml`, handed to `ctr images pull --hosts-dir`. */
  hostsDir: string
  /** Snapshotter to unpack into; containerd's default (overlayfs) when omitted. */
  snapshotter?: string
  /** ctr namespace; `default` when omitted. */
  namespace?: string
  timeoutMs?: number
}

/** One row of `ctr images ls`. */
export interface ImageRow {
  ref: string
  mediaType: string
  digest: string
}

export interface Containerd {
  /** The gRPC socket, for `ctr --address`. */
  address: string
  pid: number
  /** `ctr images pull` (fetch and unpack); rejects with ctr's output when the pull fails. */
  pull(ref: string, options: PullOptions): Promise<RunResult>
  /** Any other `ctr` command against this daemon: `ctr('images', 'ls')`. */
  ctr(args: string[], options?: { namespace?: string; timeoutMs?: number }): Promise<RunResult>
  /** The images of a namespace, as `ctr images ls` lists them. */
  images(namespace?: string): Promise<ImageRow[]>
  /** Snapshotter plugin id → status (`ok`, `skip`, `error`) from `ctr plugins ls`. */
  snapshotters(): Promise<Map<string, string>>
  /** Everything the daemon wrote (debug level). */
  logs(): string
  /** SIGTERM (SIGKILL after 5 s) by PID, then removes the temp dir. Idempotent. */
  stop(): Promise<void>
}

/** Why containerd-backed tests cannot run here, or undefined when they can. */
export function containerdUnavailable(...alsoNeeded: string[]): string | undefined {
  const missing = missingTools('containerd', 'ctr', ...alsoNeeded)
  if (missing.length > 0) return `needs ${missing.join(', ')} on PATH (apt-get install containerd ${alsoNeeded.join(' ')})`
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root: containerd mounts snapshots while unpacking'
  return undefined
}

// Plugins a pull does not need: slow or noisy to load, or touching host paths.
const disabledPlugins = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
]

const toml = (value: string): string => JSON.stringify(value)

function configText(dir: string, address: string): string {
  return [
    'version = 2',
    `root = ${toml(join(dir, 'root'))}`,
    `state = ${toml(join(dir, 'state'))}`,
    `temp = ${toml(join(dir, 'tmp'))}`,
    `disabled_plugins = [${disabledPlugins.map(toml).join(', ')}]`,
    '',
    '[grpc]',
    `  address = ${toml(address)}`,
    '[ttrpc]',
    `  address = ${toml(`${address}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '  level = "debug"',
    '[metrics]',
    '  address = ""',
    '',
    // Each namespace sees only the blobs it fetched itself: a pull can never be satisfied by
    // content another test's pull left behind.
    '[plugins."io.containerd.metadata.v1.bolt"]',
    '  content_sharing_policy = "isolated"',
    // Its default is /opt/containerd on the host.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${toml(join(dir, 'opt'))}`,
    '',
  ].join('\n')
}

export async function startContainerd(options: { startTimeoutMs?: number } = {}): Promise<Containerd> {
  // Short base path: a unix socket path must stay under 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'ferry-ctd-'))
  const address = join(dir, 'containerd.sock')
  const configPath = join(dir, 'config.toml')
  await writeFile(configPath, configText(dir, address))

  const child = spawn('containerd', ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const killOnExit = (): void => void child.kill('SIGKILL')
  process.once('exit', killOnExit)
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))

  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await terminate(child)
      process.removeListener('exit', killOnExit)
      await rm(dir, { recursive: true, force: true })
    })()
    return stopping
  }

  const ctr = (args: string[], opts: { namespace?: string; timeoutMs?: number } = {}): Promise<RunResult> =>
    run('ctr', ['--address', address, ...(opts.namespace ? ['--namespace', opts.namespace] : []), ...args], {
      timeoutMs: opts.timeoutMs ?? 30_000,
    })

  try {
    await Promise.race([
      waitUntilServing(child, address, ctr, options.startTimeoutMs ?? 60_000),
      spawnError.then((err) => Promise.reject(err)),
    ])
  } catch (err) {
    await stop()
    throw new Error(`${(err as Error).message}\n--- containerd output ---\n${output.slice(-8000)}`, { cause: err })
  }

  return {
    address,
    pid: child.pid ?? -1,
    pull: (ref, opts) =>
      ctr(['images', 'pull', '--hosts-dir', opts.hostsDir, ...(opts.snapshotter ? ['--snapshotter', opts.snapshotter] : []), ref], {
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        timeoutMs: opts.timeoutMs ?? 30_000,
      }),
    ctr,
    images: async (namespace) => parseImages((await ctr(['images', 'ls'], namespace ? { namespace } : {})).stdout),
    snapshotters: async () => {
      const plugins = new Map<string, string>()
      for (const line of (await ctr(['plugins', 'ls'])).stdout.split('\n')) {
        const [type, id, , status] = line.trim().split(/\s+/)
        if (type === 'io.containerd.snapshotter.v1' && id !== undefined && status !== undefined) plugins.set(id, status)
      }
      return plugins
    },
    logs: () => output,
    stop,
  }
}

/** `REF TYPE DIGEST SIZE PLATFORMS LABELS`; SIZE has a space in it, so only the first three columns are read. */
function parseImages(text: string): ImageRow[] {
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols): cols is [string, string, string, ...string[]] => cols.length >= 3 && cols[0] !== '')
    .map(([ref, mediaType, digest]) => ({ ref, mediaType, digest }))
}

async function waitUntilServing(
  child: ChildProcess,
  address: string,
  ctr: (args: string[], opts?: { timeoutMs?: number }) => Promise<RunResult>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`containerd exited (${child.exitCode ?? child.signalCode})`)
    if (existsSync(address)) {
      try {
        await ctr(['version'], { timeoutMs: 2_000 })
        return
      } catch (err) {
        last = err
      }
    }
    await sleep(25)
  }
  throw new Error(`containerd did not serve ${address} within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`)
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await exited
  clearTimeout(timer)
}
