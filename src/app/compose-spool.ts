// The local spool of cold fills, on a store slower to write than the upstream (S3) only: on the
// filesystem the upload file itself is what followers read. Left-overs of dead processes go first.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { FillSpool } from '../transfer/fill-spool.js'

export async function composeSpool(config: Config, logger: Logger): Promise<FillSpool | undefined> {
  const s3 = config.storage.s3
  if (config.storage.driver !== 's3' || s3.spoolBytes <= 0) return undefined
  const spool = new FillSpool(s3.spoolPath ?? join(tmpdir(), 'ferry-spool'), s3.spoolBytes)
  try {
    await spool.prepare()
  } catch (err) {
    // A fill without a spool still works, at the pace of its upload.
    logger.warn({ dir: spool.dir, err }, 'fill spool unusable: cold fills go at the pace of their upload')
    return undefined
  }
  logger.info({ dir: spool.dir, maxBytes: spool.maxBytes }, 'fill spool ready')
  return spool
}
