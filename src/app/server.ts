// Starts Ferry on the configured address and stops it gracefully: stop accepting, let requests
// in flight (long blob downloads included) finish for up to http.shutdownTimeout, then cut.
// With a certificate configured it serves HTTPS (HTTP/2 and HTTP/1.1 on one port) and swaps the
// certificate on reload() without dropping connections; without one, plain HTTP, with a warning.
import { mkdir, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { compose } from './compose-app.js'
import type { UploadWatch } from '../storage/digesting-stream.js'
import type { Config } from '../config/schema.js'
import { StartupError, describeSystemError } from '../core/startup-error.js'
import { trackConnections } from './connection-tracker.js'
import type { AppServerOptions } from '../http/app.js'
import type { Metrics } from '../observability/metrics.js'
import { CertificateReloader } from '../tls/certificate-reloader.js'
import { loadCertificateSet, TlsFileError, type CertificateSet, type TlsFiles } from '../tls/certificate-set.js'
import { httpsServerOptions, secureContextOptions } from '../tls/server-options.js'

export interface RunningServer {
  url: string
  /** Re-reads the files that may change while running (the TLS certificate set). Never rejects. */
  reload(next?: Config): Promise<void>
  close(): Promise<void>
}

interface ServingTls {
  files: TlsFiles
  set: CertificateSet
  serverOptions: AppServerOptions
}

/** What `serve` hands the server besides its config. */
export interface ServerHooks {
  /** Told when uploads of pushed blobs start and end taking bytes in (cli/old-generation.ts). */
  uploadWatch?: UploadWatch
  /** Told when bulk imports start and end (cli/old-generation.ts). */
  importWatch?: UploadWatch
}

export async function startServer(config: Config, logger: Logger, hooks: ServerHooks = {}): Promise<RunningServer> {
  if (config.storage.driver === 'filesystem') await prepareStorageFolder(config.storage.filesystem.path)
  // Checked before anything else starts: a bad certificate fails start-up naming key and file.
  const tls = await loadServingTls(config).catch((err: unknown) => {
    if (err instanceof TlsFileError) throw new StartupError(err.configKey, `cannot serve HTTPS: ${err.message}`, { cause: err })
    throw err
  })
  const composed = await compose(config, logger, {
    serverOptions: tls?.serverOptions,
    uploadWatch: hooks.uploadWatch,
    importWatch: hooks.importWatch,
  })
  const { app } = composed
  app.server.keepAliveTimeout = config.http.idleTimeout
  // Idle sockets (a stalled client mid-upload included) are cut after the same idle time;
  // there is deliberately no whole-request timeout. fastify clears node:http's, but node:http2's
  // HTTP/1.1 fallback has its own 5-minute default, which would cut a large upload.
  app.server.timeout = config.http.idleTimeout
  app.server.requestTimeout = 0
  const connections = trackConnections(app.server)
  await app.listen({ host: config.listen.host, port: config.listen.port }).catch(async (err: unknown) => {
    await composed.close(0).catch(() => {})
    const where = config.listen.host.includes(':')
      ? `[${config.listen.host}]:${config.listen.port}`
      : `${config.listen.host}:${config.listen.port}`
    throw new StartupError('listen', `cannot listen on ${where}: ${describeSystemError(err)}`, { cause: err })
  })
  composed.startHousekeeping()
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const { s3 } = config.storage
  // Where, never with what credentials.
  const location =
    config.storage.driver === 's3'
      ? {
          bucket: s3.bucket,
          prefix: s3.prefix,
          region: s3.region,
          endpoint: s3.endpoint,
          credentials: s3.credentials ? 'config' : 'sdk default chain',
        }
      : { path: config.storage.filesystem.path }
  logger.info({ driver: config.storage.driver, ...location, deleteEnabled: config.storage.deleteEnabled }, 'storage ready')
  if (config.http.sendfile && tls === undefined) {
    const problem = composed.sendfileProblem
    if (problem)
      logger.warn(
        { problem },
        'sendfile(2) helper unavailable: blobs are sent through memory buffers (build it with `node scripts/build-native.mjs` in the package folder; needs cc)',
      )
  }

  let reloader: CertificateReloader | undefined
  if (tls === undefined) {
    // Absent rather than 0, so an expiry alert never fires on an instance without a certificate.
    composed.metrics.registry.removeSingleMetric('ferry_tls_certificate_expiry_seconds')
    logger.warn(
      'TLS is off: serving plain HTTP, readable and alterable by anyone on the network; set tls.cert and tls.key (--tls-cert, --tls-key) to serve HTTPS',
    )
  } else {
    reloader = startReloader(app.server as unknown as TlsServer, tls, config, logger, composed.metrics)
    await reloader.watch()
  }

  return {
    url: `${tls ? 'https' : 'http'}://${host}:${address.port}`,
    // SIGHUP: re-read everything that rotates (the watchers usually beat us to it), and apply
    // the live-reloadable parts of a re-read config when the caller has one.
    async reload(next?: Config) {
      // Files named by the new config are read while applying it; the rest are re-read here.
      if (next) await composed.applyConfig(next)
      await Promise.all([composed.reloadCredentials(), reloader?.reload('SIGHUP')])
    },
    async close() {
      reloader?.close()
      composed.stop()
      // HTTP/2 clients are told to open no new streams; their downloads in flight go on.
      connections.drainSessions()
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          logger.warn({ ms: config.http.shutdownTimeout }, 'shutdown timeout reached, closing remaining connections')
          connections.destroyAll()
          resolve()
        }, config.http.shutdownTimeout)
      })
      const started = Date.now()
      await Promise.race([app.close(), deadline])
      clearTimeout(timer)
      await composed.close(Math.max(0, config.http.shutdownTimeout - (Date.now() - started)))
    },
  }
}

// Created if missing and written to once, so an unusable folder fails the start, not the first push.
async function prepareStorageFolder(path: string): Promise<void> {
  const probe = join(path, `.ferry-write-check-${process.pid}`)
  try {
    await mkdir(path, { recursive: true })
    await writeFile(probe, '')
    await rm(probe, { force: true })
  } catch (err) {
    throw new StartupError('storage.filesystem.path', `cannot use storage.filesystem.path ${path}: ${describeSystemError(err)}`, {
      cause: err,
    })
  }
}

async function loadServingTls(config: Config): Promise<ServingTls | undefined> {
  if (config.tls.serving === undefined) return undefined
  const files: TlsFiles = { ...config.tls.serving, clientCa: config.tls.clientCa }
  const set = await loadCertificateSet(files)
  return {
    files,
    set,
    serverOptions: {
      https: httpsServerOptions(set, config.tls),
      http2: config.tls.http2,
      http2SessionTimeout: config.http.idleTimeout,
    },
  }
}

function startReloader(server: TlsServer, tls: ServingTls, config: Config, logger: Logger, metrics: Metrics): CertificateReloader {
  const { set } = tls
  logger.info(
    {
      serial: set.serialNumber,
      subject: set.subject,
      notAfter: set.notAfter.toISOString(),
      http2: config.tls.http2,
      minVersion: config.tls.minVersion,
      clientCertificates: config.tls.clientCa === undefined ? 'not requested' : 'required',
    },
    'tls enabled',
  )
  for (const warning of set.warnings) logger.warn({ warning }, 'tls certificate warning')
  return new CertificateReloader({
    files: tls.files,
    current: set,
    // Affects new handshakes only: connections in flight keep the context they started with.
    install: (next) => server.setSecureContext(secureContextOptions(next, config.tls)),
    logger,
    metrics,
  })
}
