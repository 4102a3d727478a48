// How to reach an S3 bucket: the settings `storage.s3` decodes to (config/storage-schema.ts) and
// the S3 driver and the import reader connect with (storage/driver/). Types only.

export type S3ChecksumMode = 'WHEN_SUPPORTED' | 'WHEN_REQUIRED'

export interface S3Settings {
  bucket: string
  /** Key prefix without leading or trailing "/"; "" for the bucket root. */
  prefix: string
  region: string
  /** An S3-compatible store's URL; undefined for AWS. */
  endpoint: string | undefined
  forcePathStyle: boolean
  /** Both or neither; undefined uses the SDK's default chain (env, shared files, web identity, instance metadata). */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined
  storageClass: string | undefined
  sse: { type: 'AES256' } | { type: 'aws:kms'; kmsKeyId: string | undefined } | undefined
  /** PEM CA bundle trusted besides the public roots. */
  caPath: string | undefined
  maxSockets: number
  /** WHEN_REQUIRED for stores that reject or mis-store the SDK's default checksum headers (aws-chunked). */
  requestChecksumCalculation: S3ChecksumMode
}
