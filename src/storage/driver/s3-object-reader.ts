// Reads a whole S3 object for a server-side import (`{"source":"s3://bucket/key"}`) as ranged
// GETs: one 16 MiB range at a time with the next one already requested, so a multi-GiB bundle
// never rests on one long-lived response, a failed range is asked again (with backoff), and each
// range names the ETag first seen (If-Match): an object replaced mid-read fails the import instead
// of mixing two bundles. Beside the S3 driver because only these files may import the AWS SDK.
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import type { ObjectReader } from '../../core/imports.js'
import { createS3Client, isMissing, type S3DriverOptions } from './s3-client.js'
import { exactRange } from './s3-range.js'

const rangeBytes = 16 * 1024 * 1024
const attempts = 4

export class S3ObjectReader implements ObjectReader {
  readonly #client: S3Client

  private constructor(client: S3Client) {
    this.#client = client
  }

  /** The connection settings of `storage.s3` (endpoint, region, credentials, CA); the bucket comes with each source. */
  static async create(options: S3DriverOptions): Promise<S3ObjectReader> {
    return new S3ObjectReader(await createS3Client(options))
  }

  async stat(bucket: string, key: string, signal?: AbortSignal): Promise<{ size: number; etag: string } | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), signal ? { abortSignal: signal } : {})
      return { size: head.ContentLength ?? 0, etag: head.ETag ?? '' }
    } catch (err) {
      if (isMissing(err)) return undefined
      throw err
    }
  }

  open(bucket: string, key: string, object: { size: number; etag: string }, signal?: AbortSignal): Readable {
    const client = this.#client
    const fetchRange = async (start: number): Promise<Readable> => {
      const end = Math.min(object.size, start + rangeBytes) - 1
      for (let attempt = 1; ; attempt++) {
        try {
          const response = await client.send(
            new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end}`, IfMatch: object.etag || undefined }),
            signal ? { abortSignal: signal } : {},
          )
          return exactRange(response, start, end)
        } catch (err) {
          if (attempt >= attempts || signal?.aborted || (err as { name?: string }).name === 'PreconditionFailed') throw err
          await sleep(250 * 2 ** attempt)
        }
      }
    }
    async function* ranges(): AsyncGenerator<Buffer> {
      let next: Promise<Readable> | undefined = object.size > 0 ? fetchRange(0) : undefined
      try {
        for (let start = 0; next !== undefined; start += rangeBytes) {
          const body = await next
          // The next range is on its way while this one is read.
          next = start + rangeBytes < object.size ? fetchRange(start + rangeBytes) : undefined
          next?.catch(() => undefined)
          for await (const chunk of body) yield chunk as Buffer
        }
      } finally {
        // A reader stopped early: the range fetched ahead would otherwise hold its socket.
        void next?.then(
          (body) => body.destroy(),
          () => undefined,
        )
      }
    }
    return Readable.from(ranges(), { objectMode: false })
  }
}
