// Composition root: the only place that knows which implementation backs which interface. Builds
// the storage driver, the local and cache registries, the mirror, auth, blob transfer and the
// fastify app from a Config, plus the housekeeping and live-reload hooks server.ts drives.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildAuth } from './compose-auth.js'
import type { Config } from '../config/schema.js'
import { buildApp, type AppServerOptions } from '../http/app.js'
import { Metrics } from '../observability/metrics.js'
import type { StorageDriver } from '../storage/driver/driver.js'
import { FilesystemDriver } from '../storage/driver/filesystem.js'
import { LocalRegistry } from '../storage/local-registry.js'
import { composeLifecycle, type Lifecycle } from './compose-lifecycle.js'
import { composeMirror } from './compose-mirror.js'
import { composeTransfer } from './compose-transfer.js'

export interface Composed {
  app: FastifyInstance
  /** Pushed content. */
  registry: LocalRegistry
  metrics: Metrics
  /** Quota and eviction, GC, scrub, pull and push times, the full-volume condition. */
  lifecycle: Lifecycle
  /** Why blobs are not sent with sendfile(2) although http.sendfile asks for it (undefined: they are, or it is off). */
  sendfileProblem: string | undefined
  /** Re-reads the htpasswd and token key files and upstream TLS files now (changes to them are picked up anyway). */
  reloadCredentials(): Promise<void>
  /** Applies what can change without a restart from a re-read config (role bindings, the mirror section). Never rejects. */
  applyConfig(config: Config): Promise<void>
  /** Starts periodic housekeeping (abandoned upload purge, the storage lifecycle's jobs). */
  startHousekeeping(): void
  /** Stops housekeeping; marks the instance not ready. */
  stop(): void
  /** After the server closed: lets cache fills finish (up to `timeoutMs`), releases upstream connections. */
  close(timeoutMs: number): Promise<void>
}

export async function buildDriver(config: Config): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver(config.storage.filesystem.path)
    case 's3': {
      // Imported only when used: the AWS SDK costs ~23 MiB of RSS a filesystem site never needs.
      const { S3Driver } = await import('../storage/driver/s3.js')
      return S3Driver.create(config.storage.s3)
    }
  }
}

export interface ComposeOptions {
  /** HTTPS/HTTP2 server options, built by the caller from certificate files it has checked. */
  serverOptions?: AppServerOptions | undefined
  /** The clock of tag freshness and token expiry; tests inject one to step past a TTL without waiting. */
  now?: () => number
}

export async function compose(config: Config, logger: Logger, options: ComposeOptions = {}): Promise<Composed> {
  const driver = await buildDriver(config)
  const storageCaches = { manifestCacheBytes: config.cache.manifestMemory, metadataTtlMs: config.cache.metadataTtl }
  const registry = new LocalRegistry(driver, storageCaches)
  const cache = new LocalRegistry(driver, { ...storageCaches, storagePrefix: '_cache' })
  const metrics = new Metrics()
  const lifecycle = composeLifecycle(config, driver, { registry, cache }, metrics, logger)
  const transfer = composeTransfer({ sendfile: config.http.sendfile, metrics })
  // Always composed, even without upstreams: a reloaded config may add the first one.
  const mirror = await composeMirror(config.mirror, lifecycle.registry, lifecycle.cache, {
    metrics,
    logger,
    blockBudget: transfer.budget,
    retireTimeoutMs: config.http.shutdownTimeout,
    ...(options.now ? { now: options.now } : {}),
  })
  let stopping = false
  let timer: NodeJS.Timeout | undefined
  // Always the real thing: there is no way to compose Ferry without authentication.
  const auth = await buildAuth(config.auth, logger, metrics, options.now)

  const app = await buildApp({
    registry: mirror.registry,
    logger,
    metrics,
    options: { deleteEnabled: config.storage.deleteEnabled },
    blobSender: transfer.sender,
    ready: async () => !stopping && (await driver.list('').then(() => true)),
    storageProblem: () => lifecycle.problem(),
    maintenance: lifecycle,
    authenticator: auth.authenticator,
    authorizer: auth.authorizer,
    tokenService: auth.tokenService,
    ...(options.serverOptions ? { serverOptions: options.serverOptions } : {}),
  })

  const housekeeping = async (): Promise<void> => {
    try {
      const cutoff = new Date(Date.now() - config.storage.uploads.maxAge)
      const purged = (await registry.purgeUploads(cutoff)) + (await cache.purgeUploads(cutoff))
      if (driver instanceof FilesystemDriver) await driver.purgeTemp(config.storage.uploads.maxAge)
      metrics.uploadsPurged.inc(purged)
      if (purged > 0) logger.info({ purged }, 'purged abandoned uploads')
    } catch (err) {
      logger.error({ err }, 'upload purge failed')
    }
  }

  return {
    app,
    registry,
    metrics,
    lifecycle,
    sendfileProblem: transfer.sendfileProblem,
    reloadCredentials: async () => {
      // Upstream CA bundles and client certificates rotate like our own credentials.
      await Promise.all([auth.reload(), mirror.reloadTransports('SIGHUP'), mirror.reloadCredentials()])
    },
    applyConfig: async (next) => {
      auth.applyPolicy(next.auth)
      await mirror.apply(next.mirror)
    },
    startHousekeeping() {
      lifecycle.start()
      void housekeeping()
      timer = setInterval(() => void housekeeping(), config.storage.uploads.purgeInterval)
      timer.unref()
    },
    stop() {
      stopping = true
      if (timer) clearInterval(timer)
    },
    async close(timeoutMs) {
      auth.close()
      await mirror.close(timeoutMs)
      await lifecycle.stop()
    },
  }
}
