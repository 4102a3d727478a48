// Ferry composed from a real Config (compose(), as `ferry serve` runs it) with accounts from an
// htpasswd file written by the real tool, no upstreams, and captured logs.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { UploadWatch } from '../../src/storage/digesting-stream.js'
import type { AuthConfig, Config } from '../../src/config/schema.js'
import { writeHtpasswd } from './htpasswd.js'
import { startMirrorServer, type MirrorServer } from './mirror-server.js'

export interface AuthServer extends MirrorServer {
  /** The htpasswd file in use. */
  htpasswd: string
  /** A temp folder for the test's own files (removed at teardown). */
  dir: string
  /** Parsed log lines so far. */
  records(): Array<Record<string, unknown>>
}

export interface AuthServerOptions {
  /** name → password, written to the htpasswd file. */
  users?: Record<string, string>
  auth?: Partial<AuthConfig>
  logLevel?: string
  /** The server's clock (token expiry): a test steps it instead of sleeping. */
  now?: () => number
  /** Last changes to the config before it is composed. */
  configure?: (config: Config) => void
  /** Told when uploads start and end taking bytes in (ComposeOptions.uploadWatch). */
  uploadWatch?: UploadWatch
  /** Told when bulk imports start and end (ComposeOptions.importWatch). */
  importWatch?: UploadWatch
}

export async function startAuthServer(t: Test, options: AuthServerOptions = {}): Promise<AuthServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-auth-'))
  const htpasswd = join(dir, 'users.htpasswd')
  await writeHtpasswd(htpasswd, options.users ?? {})
  const server = await startMirrorServer(
    { upstreams: [], defaultUpstream: undefined },
    {
      auth: { htpasswd, ...options.auth },
      ...(options.logLevel ? { logLevel: options.logLevel } : {}),
      ...(options.now ? { now: options.now } : {}),
      ...(options.configure ? { configure: options.configure } : {}),
      ...(options.uploadWatch ? { uploadWatch: options.uploadWatch } : {}),
      ...(options.importWatch ? { importWatch: options.importWatch } : {}),
    },
  )
  t.teardown(async () => {
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    ...server,
    htpasswd,
    dir,
    records: () =>
      server.logs.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>]
        } catch {
          return []
        }
      }),
  }
}

/** The parameters of a `Bearer k="v",…` challenge. */
export function parseChallenge(header: string | null): Record<string, string> | undefined {
  if (header === null || !header.startsWith('Bearer ')) return undefined
  const params: Record<string, string> = {}
  for (const match of header.slice('Bearer '.length).matchAll(/(\w+)="([^"]*)"/g)) params[match[1]!] = match[2]!
  return params
}
