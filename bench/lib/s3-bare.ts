// The throughput ceiling for the S3 scenario: the same bytes up and down with @aws-sdk/client-s3
// alone (a multipart upload of equal 16 MiB parts, three in flight; one GetObject streamed).
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3'
import type { S3Client } from '@aws-sdk/client-s3'
import type { Readable } from 'node:stream'
import { createS3Client, type S3DriverOptions } from '../../src/storage/driver/s3-client.js'

const part = 16 * 1024 * 1024
// As Ferry's own process (src/cli/io.ts): no AWS SDK NodeVersionSupportWarning in the bench output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

export class Upload {
  readonly #client: Promise<S3Client>
  constructor(private readonly options: S3DriverOptions) {
    this.#client = createS3Client(options)
  }

  async put(key: string, bytes: Buffer): Promise<void> {
    const client = await this.#client
    const Bucket = this.options.bucket
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: key }))
    const parts: Array<{ PartNumber: number; ETag: string | undefined }> = []
    const numbers = Array.from({ length: Math.ceil(bytes.length / part) }, (_, i) => i + 1)
    const send = async (n: number): Promise<void> => {
      const { ETag } = await client.send(
        new UploadPartCommand({ Bucket, Key: key, UploadId, PartNumber: n, Body: bytes.subarray((n - 1) * part, n * part) }),
      )
      parts.push({ PartNumber: n, ETag })
    }
    for (let i = 0; i < numbers.length; i += 3) await Promise.all(numbers.slice(i, i + 3).map(send))
    parts.sort((a, b) => a.PartNumber - b.PartNumber)
    await client.send(new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }))
  }

  async get(key: string): Promise<number> {
    const client = await this.#client
    const response = await client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: key }))
    let got = 0
    for await (const chunk of response.Body as Readable) got += (chunk as Buffer).length
    return got
  }

  close(): void {
    void this.#client.then((client) => client.destroy())
  }
}
