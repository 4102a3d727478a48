// Starts a real Ferry app on an ephemeral loopback port over a temp filesystem store, or over
// S3 (an s3rver of its own) with `storage: 's3'` or FERRY_TEST_STORAGE=s3 in the environment.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { composeTransfer } from '../../src/app/compose-transfer.js'
import { buildApp, type AppDeps } from '../../src/http/app.js'
import { Metrics } from '../../src/observability/metrics.js'
import type { StorageDriver } from '../../src/storage/driver/driver.js'
import { FilesystemDriver } from '../../src/storage/driver/filesystem.js'
import { S3Driver } from '../../src/storage/driver/s3.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'
import { openAuthenticator, openAuthorizer } from './open-access.js'
import { startS3Server, type S3TestServer } from './s3-server.js'

export interface TestServer {
  url: string
  /** host:port, as skopeo and containerd want it. */
  host: string
  root: string
  app: FastifyInstance
  registry: LocalRegistry
  metrics: Metrics
  /** The storage under `registry` (filesystem at `root`, or S3): tests inspect what is stored through it. */
  driver: StorageDriver
  /** The s3rver under `driver` on S3: another server given it (and `root`) shares this storage. */
  s3?: S3TestServer
  close(): Promise<void>
}

export interface TestServerOptions extends Partial<Pick<AppDeps, 'options'>> {
  logLevel?: string
  /** Storage folder to serve (another server's `root`: two replicas on shared storage); default a new one. */
  root?: string
  /** cache.metadataTtl in milliseconds (default the registry's own). */
  metadataTtlMs?: number
  /** http.sendfile: plain HTTP/1.1 downloads go out with sendfile(2) (default true). */
  sendfile?: boolean
  /** The storage driver (default FERRY_TEST_STORAGE, else filesystem); s3 starts an s3rver of its own. */
  storage?: 'filesystem' | 's3'
  /** The S3 server of `storage: 's3'` (the caller closes it); default one of the server's own. */
  s3?: S3TestServer
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const root = options.root ?? (await mkdtemp(join(tmpdir(), 'ferry-test-')))
  const storage = options.storage ?? (process.env.FERRY_TEST_STORAGE === 's3' ? 's3' : 'filesystem')
  const ownS3 = storage === 's3' && options.s3 === undefined ? await startS3Server() : undefined
  const s3 = options.s3 ?? ownS3
  const metrics = new Metrics({ processMetrics: false })
  const onRequest = (operation: string): void => metrics.s3Requests.inc({ operation })
  const driver: StorageDriver =
    storage === 's3' && s3
      ? await S3Driver.create({ ...s3.driverOptions(), onRequest, socketReads: options.sendfile ?? true })
      : new FilesystemDriver(root)
  const registry = new LocalRegistry(driver, options.metadataTtlMs === undefined ? {} : { metadataTtlMs: options.metadataTtlMs })
  const app = await buildApp({
    registry,
    metrics,
    logger: pino({ level: options.logLevel ?? process.env.FERRY_TEST_LOG ?? 'silent' }),
    // The registry API without access control; test/auth covers that through compose().
    authenticator: openAuthenticator,
    authorizer: openAuthorizer,
    blobSender: composeTransfer({ sendfile: options.sendfile ?? true, metrics }).sender,
    ...(options.options ? { options: options.options } : {}),
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    root,
    app,
    registry,
    metrics,
    driver,
    ...(s3 ? { s3 } : {}),
    async close() {
      const closing = app.close()
      // A test is over: connections a client opened but never used would otherwise hold the
      // close until Node's headers timeout (~70 s).
      app.server.closeAllConnections()
      await closing
      await ownS3?.close()
      await rm(root, { recursive: true, force: true })
    },
  }
}

/** A server of the test's own (isolated storage), closed when the test ends. */
export async function freshServer(t: { teardown(fn: () => Promise<void>): void }, options: TestServerOptions = {}): Promise<TestServer> {
  const own = await startTestServer(options)
  t.teardown(() => own.close())
  return own
}
