// Composition root: the only place that knows which implementation backs which interface. Builds
// the storage driver, the local and cache registries, the mirror, auth, blob transfer and the
// fastify app from a Config, plus the housekeeping and live-reload hooks server.ts drives.
import { statfs } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildAuth } from './compose-auth.js'
import type { Config } from '../config/schema.js'
import { buildApp, type AppServerOptions } from '../http/app.js'
import { Metrics } from '../observability/metrics.js'
import type { StatusFacts } from '../observability/status-report.js'
import type { StorageDriver } from '../storage/driver/driver.js'
import { FilesystemDriver } from '../storage/driver/filesystem.js'
import { LocalRegistry } from '../storage/local-registry.js'
import type { UploadWatch } from '../storage/digesting-stream.js'
import { composeImports } from './compose-imports.js'
import { HashThreads } from '../storage/hash-threads.js'
import { peerRoutes } from '../coordination/peer-routes.js'
import { composeCoordination } from './compose-coordination.js'
import { composeLifecycle, type Lifecycle } from './compose-lifecycle.js'
import { composeMirror } from './compose-mirror.js'
import { gcThenTrim, majorGc, minorGc, pacedScavenges, partsScavengeEveryBytes } from './memory-reclaim.js'
import { nativeSendfile } from '../transfer/native-sendfile.js'
import type { PartMemory } from '../storage/driver/s3-client.js'
import { composeSpool } from './compose-spool.js'
import { composeTransfer } from './compose-transfer.js'
import { packageVersion } from './package-version.js'

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
  /** Starts periodic housekeeping (abandoned upload purge, the storage lifecycle's jobs) and resumes imports a restart interrupted. */
  startHousekeeping(): void
  /** Stops housekeeping; marks the instance not ready. */
  stop(): void
  /** After the server closed: lets cache fills finish (up to `timeoutMs`), releases upstream connections. */
  close(timeoutMs: number): Promise<void>
}

/**
 * What the S3 driver's part budget runs for the memory of parts (s3-upload.ts): V8's young-generation
 * GC as writes go, and, once its spare buffers are dropped, a full GC then the C heap trimmed.
 */
function partMemory(sendfile: boolean): PartMemory {
  const gc = majorGc()
  const scavenge = minorGc()
  if (gc === undefined || scavenge === undefined) return {}
  const native = sendfile ? nativeSendfile().native : undefined
  return { onCopied: pacedScavenges(partsScavengeEveryBytes, scavenge), reclaim: gcThenTrim(gc, native?.trimMemory?.bind(native)) }
}

/** The configured storage driver; `metrics` and `logger`, when given, count S3 requests and report the store's capabilities. */
export async function buildDriver(config: Config, metrics?: Metrics, logger?: Logger): Promise<StorageDriver> {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver(config.storage.filesystem.path)
    case 's3': {
      // Imported only when used: the AWS SDK costs ~23 MiB of RSS a filesystem site never needs.
      const { S3Driver } = await import('../storage/driver/s3.js')
      const onRequest = (operation: string): void => metrics?.s3Requests.inc({ operation })
      const driver = await S3Driver.create({
        ...config.storage.s3,
        onRequest,
        socketReads: config.http.sendfile,
        partMemory: partMemory(config.http.sendfile),
      })
      if (driver.conditionalWrites) logger?.info('S3 store honours conditional writes (If-None-Match: *): a blob is never written twice')
      else
        logger?.warn(
          'S3 store ignores conditional writes (If-None-Match: *): falling back to unconditional writes; two replicas committing one blob both write it (same bytes, last one wins)',
        )
      return driver
    }
  }
}

export interface ComposeOptions {
  /** HTTPS/HTTP2 server options, built by the caller from certificate files it has checked. */
  serverOptions?: AppServerOptions | undefined
  /** The clock of tag freshness and token expiry; tests inject one to step past a TTL without waiting. */
  now?: () => number
  /** Told when uploads of pushed blobs start and end taking bytes in (not a bulk import's). */
  uploadWatch?: UploadWatch | undefined
  /** Told when bulk imports start and end. */
  importWatch?: UploadWatch | undefined
}

export async function compose(config: Config, logger: Logger, options: ComposeOptions = {}): Promise<Composed> {
  const metrics = new Metrics()
  const driver = await buildDriver(config, metrics, logger)
  const redirectMs = config.storage.driver === 's3' ? config.storage.s3.redirectMs : undefined
  const storageCaches = {
    manifestCacheBytes: config.cache.manifestMemory,
    metadataTtlMs: config.cache.metadataTtl,
    ...(redirectMs === undefined ? {} : { redirectSeconds: Math.floor(redirectMs / 1000) }),
  }
  // The bulk import's hashes (the bundle's, each blob's) run on these, not on the main thread.
  const hashes = new HashThreads()
  const registry = new LocalRegistry(driver, {
    ...storageCaches,
    hashes,
    ...(options.uploadWatch ? { uploadWatch: options.uploadWatch } : {}),
  })
  const cache = new LocalRegistry(driver, { ...storageCaches, storagePrefix: '_cache' })
  const coordinator = await composeCoordination(config.coordination, logger)
  const lifecycle = composeLifecycle(config, driver, { registry, cache }, metrics, logger, coordinator)
  const transfer = composeTransfer({ sendfile: config.http.sendfile, metrics })
  const spool = await composeSpool(config, logger)
  // Always composed, even without upstreams: a reloaded config may add the first one.
  const mirror = await composeMirror(config.mirror, lifecycle.registry, lifecycle.cache, {
    metrics,
    logger,
    blockBudget: transfer.budget,
    retireTimeoutMs: config.http.shutdownTimeout,
    coordinator,
    ...(spool ? { spool } : {}),
    ...(options.now ? { now: options.now } : {}),
  })
  let stopping = false
  let timer: NodeJS.Timeout | undefined
  let mirrorConfig = config.mirror
  // Always the real thing: there is no way to compose Ferry without authentication.
  const auth = await buildAuth(config.auth, logger, metrics, options.now)
  // Imports write pushed content: the local registry, not the mirror in front of it.
  const retention = { retentionMs: config.imports.retention, keep: config.imports.keep }
  const imports = composeImports({
    registry,
    driver,
    s3: config.storage.s3,
    retention,
    metrics,
    logger,
    hashes,
    watch: options.importWatch,
  })

  const app = await buildApp({
    registry: mirror.registry,
    logger,
    metrics,
    options: { deleteEnabled: config.storage.deleteEnabled },
    blobSender: transfer.sender,
    ready: async () => !stopping && (await (driver.check ? driver.check() : driver.list('')).then(() => true)),
    storageProblem: () => lifecycle.problem(),
    accessTimes: lifecycle.times,
    maintenance: lifecycle,
    authenticator: auth.authenticator,
    authorizer: auth.authorizer,
    tokenService: auth.tokenService,
    status: statusFacts(config, () => mirrorConfig.upstreams),
    imports,
    ...(options.serverOptions ? { serverOptions: options.serverOptions } : {}),
  })

  // Other replicas stream the fills this one holds the lease of.
  if (coordinator.shared) await app.register(peerRoutes, { coordinator, fill: (key) => mirror.fill(key) })

  let unlistedUploadsLogged = false
  const housekeeping = async (): Promise<void> => {
    try {
      const cutoff = new Date(Date.now() - config.storage.uploads.maxAge)
      const purged = (await registry.purgeUploads(cutoff)) + (await cache.purgeUploads(cutoff))
      const aborted = await driver.abortStaleUploads?.(cutoff)
      if (aborted === undefined && driver.abortStaleUploads && !unlistedUploadsLogged) {
        unlistedUploadsLogged = true
        logger.warn(
          'the S3 store cannot list multipart uploads (ListMultipartUploads): abandoned ones are not aborted by Ferry; set a lifecycle rule for incomplete multipart uploads',
        )
      }
      if (aborted) logger.info({ aborted }, 'aborted abandoned multipart uploads')
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
      mirrorConfig = next.mirror
    },
    startHousekeeping() {
      // Imports a restart interrupted: resumed (s3:// sources) or failed (bodies), never left running.
      imports.resume().catch((err: unknown) => logger.error({ err }, 'could not resume imports'))
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
      await imports.close()
      await hashes.close()
      await mirror.close(timeoutMs)
      await coordinator.close()
      transfer.stop()
      await lifecycle.stop()
    },
  }
}

/** The facts of the status page that only composition knows. Upstream URLs are shown without any user info. */
function statusFacts(config: Config, upstreams: () => Config['mirror']['upstreams']): StatusFacts {
  const version = packageVersion()
  const startedAt = new Date()
  return {
    version,
    startedAt,
    upstreams: () => upstreams().map(({ name, url }) => ({ name, url: withoutUserInfo(url) })),
    async storage() {
      if (config.storage.driver !== 'filesystem') return { driver: config.storage.driver }
      const volume = await statfs(config.storage.filesystem.path).catch(() => undefined)
      if (!volume) return { driver: 'filesystem' }
      return { driver: 'filesystem', freeBytes: volume.bavail * volume.bsize, totalBytes: volume.blocks * volume.bsize }
    },
  }
}

function withoutUserInfo(url: string): string {
  try {
    const parsed = new URL(url)
    parsed.username = ''
    parsed.password = ''
    return parsed.href.replace(/\/$/, '')
  } catch {
    return url
  }
}
