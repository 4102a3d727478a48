// The S3 driver's start-up probe and the janitor's sweep: the only places that need a write
// twice to one key or ListMultipartUploads, kept apart from the request-path driver.
import { randomUUID } from 'node:crypto'
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  type ListMultipartUploadsCommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3'
import { isNotImplemented, isPreconditionFailed, type S3DriverOptions } from './s3-client.js'

/**
 * Aborts multipart uploads under `prefix` begun before `olderThan`; how many. A store without
 * ListMultipartUploads (s3rver answers with an object listing) gives undefined: its lifecycle
 * rules must do this instead.
 */
export async function abortStaleUploads(client: S3Client, bucket: string, prefix: string, olderThan: Date): Promise<number | undefined> {
  let aborted = 0
  let keyMarker: string | undefined
  let uploadIdMarker: string | undefined
  do {
    let page: ListMultipartUploadsCommandOutput
    try {
      page = await client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      )
    } catch (err) {
      if (isNotImplemented(err)) return undefined
      throw err
    }
    // A store that answered with something else (an object listing) has no Bucket element.
    if (page.Bucket === undefined) return undefined
    for (const upload of page.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined || (upload.Initiated ?? olderThan) >= olderThan) continue
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }))
      aborted++
    }
    keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined
    uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined
  } while (keyMarker !== undefined)
  return aborted
}

/**
 * Writes a probe object twice with If-None-Match: *: a store that honours the header refuses the
 * second write (412). One that ignores it (s3rver, older S3-compatible stores) accepts both, and
 * the driver then never relies on it. The probe is deleted; 3 requests at start-up.
 */
export async function probeConditionalWrites(client: S3Client, options: S3DriverOptions): Promise<boolean> {
  const key = `${options.prefix === '' ? '' : `${options.prefix}/`}.ferry-probe/${randomUUID()}`
  const put = () => client.send(new PutObjectCommand({ Bucket: options.bucket, Key: key, Body: 'probe', IfNoneMatch: '*' }))
  try {
    await put()
    try {
      await put()
      return false
    } catch (err) {
      if (isPreconditionFailed(err)) return true
      throw err
    }
  } catch (err) {
    // 501 NotImplemented or 400 on the header itself: unsupported.
    const code = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    if (code === 501 || code === 400) return false
    throw err
  } finally {
    await client.send(new DeleteObjectCommand({ Bucket: options.bucket, Key: key })).catch(() => {})
  }
}
