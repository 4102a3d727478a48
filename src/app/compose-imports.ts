// Server-side bulk imports, composed: the import service over the local (pushed-content)
// registry, its records in storage, `s3://` sources read with the `storage.s3` connection
// settings (the AWS SDK loaded only when the first such import comes), metrics, and one audit
// line per finished import.
import { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { ImportJobs } from '../bundle/import-jobs.js'
import type { S3StorageConfig } from '../config/storage-schema.js'
import { importStates, isFinished, type ImportStatus, type ObjectReader } from '../core/imports.js'
import type { DeferredHashes } from '../core/digest.js'
import type { Registry } from '../core/registry.js'
import type { Metrics } from '../observability/metrics.js'
import type { StorageDriver } from '../storage/driver/driver.js'
import type { UploadWatch } from '../storage/digesting-stream.js'
import { StoredImportRecords } from '../storage/import-records.js'

export interface ImportsDeps {
  registry: Registry
  driver: StorageDriver
  s3: S3StorageConfig
  /** Finished import records older than `retentionMs` are pruned, the newest `keep` kept. */
  retention: { retentionMs: number; keep: number }
  metrics: Metrics
  logger: Logger
  /** Where the import's hashes run (the same threads its registry hashes blobs on). */
  hashes?: DeferredHashes
  /** Told when an import starts and ends (cli/old-generation.ts). */
  watch?: UploadWatch | undefined
}

export function composeImports(deps: ImportsDeps): ImportJobs {
  const { metrics, logger } = deps
  const states = new Map<string, ImportStatus['state']>()
  const jobs: ImportJobs = new ImportJobs({
    registry: deps.registry,
    records: new StoredImportRecords(deps.driver),
    objects: lazyObjectReader(deps.s3),
    retention: deps.retention,
    ...(deps.hashes ? { hashes: deps.hashes } : {}),
    ...(deps.watch ? { watch: deps.watch } : {}),
    onStorageError: (err, digest, status) => logger.error({ err, import: status.id, digest }, 'an imported blob could not be stored'),
    onChange: (status, change) => {
      if (change.bytesRead !== undefined) metrics.importBytes.inc(change.bytesRead)
      if (change.image !== undefined) metrics.importImages.inc({ result: change.image.status })
      if (states.get(status.id) !== status.state) {
        const finishing = isFinished(status.state) && !isFinished(states.get(status.id) ?? 'reading')
        states.set(status.id, status.state)
        for (const state of importStates) metrics.imports.set({ state }, [...states.values()].filter((s) => s === state).length)
        if (finishing) audit(logger, status)
      }
    },
    onError: (err, status) => logger.error({ err, import: status.id }, 'could not save the import record'),
  })
  return jobs
}

function audit(logger: Logger, status: ImportStatus): void {
  const count = (wanted: string) => status.images.filter((i) => i.status === wanted).length
  logger.info(
    {
      audit: true,
      action: 'import',
      user: status.user,
      import: status.id,
      namespace: status.namespace,
      source: status.source,
      state: status.state,
      bundleDigest: status.bundleDigest,
      bytesRead: status.bytesRead,
      bytesWritten: status.bytesWritten,
      images: { pushed: count('pushed'), unchanged: count('unchanged'), failed: count('failed') + count('skipped') },
      error: status.error,
    },
    'import',
  )
}

/** The S3 reader, created on first use: a filesystem site that never imports from S3 never loads the SDK. */
function lazyObjectReader(s3: S3StorageConfig): ObjectReader {
  let reader: Promise<ObjectReader> | undefined
  const get = (): Promise<ObjectReader> => {
    reader ??= import('../storage/driver/s3-object-reader.js').then(({ S3ObjectReader }) => S3ObjectReader.create(s3))
    return reader
  }
  return {
    stat: async (bucket, key, signal) => (await get()).stat(bucket, key, signal),
    open: (bucket, key, object, signal) => {
      async function* bytes(): AsyncGenerator<Buffer> {
        for await (const chunk of (await get()).open(bucket, key, object, signal)) yield chunk as Buffer
      }
      return Readable.from(bytes(), { objectMode: false })
    },
  }
}
