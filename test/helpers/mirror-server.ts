// Starts Ferry composed from a real Config (as `ferry serve` does) with mirror upstreams, on an
// ephemeral loopback port over a temp store: a folder, or with FERRY_TEST_STORAGE=s3 an s3rver
// of its own (storage.driver s3, composed as configured).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import type { UploadWatch } from '../../src/storage/digesting-stream.js'
import { compose, type Composed } from '../../src/app/compose-app.js'
import { createLogger } from '../../src/observability/logger.js'
import { defaultConfig, type AuthConfig, type Config, type UpstreamConfig } from '../../src/config/schema.js'
import { startS3Server } from './s3-server.js'

export interface MirrorServer {
  url: string
  host: string
  root: string
  composed: Composed
  logs: string[]
  close(): Promise<void>
}

export function upstreamConfig(name: string, url: string, overrides: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    ...defaultConfig().mirror.upstreams[0]!,
    name,
    url,
    retries: 0,
    timeouts: { connect: 1000, headers: 5000, bodyIdle: 5000 },
    ...overrides,
  }
}

export interface MirrorServerOptions {
  /** The `auth` section (defaults: no accounts, anonymous pull of mirrored content only: a read-only mirror). */
  auth?: Partial<AuthConfig>
  /** Level of the captured logs; 'info' unless told. */
  logLevel?: string
  /** http.sendfile (default true: plain HTTP/1.1 downloads go out with sendfile). */
  sendfile?: boolean
  /** The clock of tag TTLs and token expiry: a test steps it instead of sleeping past a TTL. */
  now?: () => number
  /** Last changes to the config before it is composed (cache quota, maintenance settings, …). */
  configure?: (config: Config) => void
  /** Told when uploads start and end taking bytes in (ComposeOptions.uploadWatch). */
  uploadWatch?: UploadWatch
  /** Told when bulk imports start and end (ComposeOptions.importWatch). */
  importWatch?: UploadWatch
}

export async function startMirrorServer(mirror: Partial<Config['mirror']>, options: MirrorServerOptions = {}): Promise<MirrorServer> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-mirror-'))
  const config = defaultConfig()
  config.storage.filesystem.path = root
  const s3 = process.env.FERRY_TEST_STORAGE === 's3' ? await startS3Server() : undefined
  if (s3) config.storage = { ...config.storage, driver: 's3', s3: { ...config.storage.s3, ...s3.driverOptions(), redirectMs: undefined } }
  config.mirror = { ...config.mirror, namespaces: [], ...mirror }
  config.auth = { ...config.auth, ...options.auth }
  if (options.sendfile !== undefined) config.http.sendfile = options.sendfile
  options.configure?.(config)
  const logs: string[] = []
  // The production logger options (redaction included), so tests see what operators see.
  const logger = createLogger(options.logLevel ?? 'info', { write: (line: string) => void logs.push(line) })
  const composed = await compose(config, logger, {
    ...(options.now ? { now: options.now } : {}),
    ...(options.uploadWatch ? { uploadWatch: options.uploadWatch } : {}),
    ...(options.importWatch ? { importWatch: options.importWatch } : {}),
  })
  await composed.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = composed.app.server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    root,
    composed,
    logs,
    async close() {
      composed.stop()
      const closing = composed.app.close()
      // Connections a client opened but never used would hold the close for ~70 s.
      composed.app.server.closeAllConnections()
      await closing
      await composed.close(10_000)
      await s3?.close()
      await rm(root, { recursive: true, force: true })
    },
  }
}
