// Presigned GET URLs: a client fetches a blob from the store itself, signed by our credentials
// for a limited time (the signature covers the bucket, the key and the expiry, nothing else).
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'

export function presignGet(client: S3Client, bucket: string, key: string, expiresInSeconds: number): Promise<string> {
  return getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresInSeconds })
}
