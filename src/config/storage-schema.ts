// The `storage` section: which driver, and each driver's settings in a sibling section of its
// name (storage.filesystem, storage.s3). A driver's section is checked only when it is the driver,
// so a filesystem config may keep an unused s3 section.
import { Type, type StaticDecode } from '@sinclair/typebox'
import { ConfigIssue } from './errors.js'
import type { S3Settings } from '../core/s3-settings.js'
import { duration, oneOf, section, size } from './leaves.js'

export const storageDrivers = ['filesystem', 's3'] as const
export type StorageDriverName = (typeof storageDrivers)[number]

export const s3ChecksumModes = ['WHEN_SUPPORTED', 'WHEN_REQUIRED'] as const

// "" means unset, as in the tls section. Secrets get no pattern: a schema error quotes the value.
const s3Section = section({
  bucket: Type.String({ default: '', expected: 'a bucket name (required when storage.driver is s3)' }),
  prefix: Type.String({
    default: '',
    pattern: '^(?:[^/\\s]+(?:/[^/\\s]+)*)?$',
    expected: 'a key prefix like "ferry" or "registry/prod" (no leading or trailing "/"), or "" for the bucket root',
  }),
  region: Type.String({ minLength: 1, default: 'us-east-1', expected: 'a region name like "eu-west-1"' }),
  endpoint: Type.String({
    default: '',
    pattern: '^(?:https?://[^/?#\\s]+/?)?$',
    expected: 'the http(s) base URL of an S3-compatible store like "https://minio.example:9000", or "" for AWS',
  }),
  forcePathStyle: Type.Boolean({ default: false, expected: 'true or false' }),
  accessKeyId: Type.String({ default: '', expected: 'an access key id, or "" for the SDK default credential chain' }),
  secretAccessKey: Type.String({ default: '', expected: 'the secret of accessKeyId, or ""' }),
  storageClass: Type.String({
    default: '',
    pattern: '^[A-Z0-9_]*$',
    expected: 'a storage class like "STANDARD" or "INTELLIGENT_TIERING", or "" for the bucket default',
  }),
  sse: Type.Union([Type.Literal(''), Type.Literal('AES256'), Type.Literal('aws:kms')], {
    default: '',
    expected: '"AES256", "aws:kms", or "" for the bucket default',
  }),
  kmsKeyId: Type.String({ default: '', expected: 'a KMS key id or ARN for sse aws:kms, or "" for the AWS managed key' }),
  caPath: Type.String({ default: '', expected: 'a path to a PEM CA bundle trusted besides the public roots, or ""' }),
  maxSockets: Type.Integer({ minimum: 1, default: 50, expected: 'an integer of at least 1' }),
  /** WHEN_REQUIRED for stores that store the SDK's aws-chunked framing with the data. */
  requestChecksumCalculation: oneOf(s3ChecksumModes, 'WHEN_SUPPORTED'),
  /** Blob GETs answer 307 with a presigned URL of the store, so the bytes go from the store to the client. */
  redirect: Type.Boolean({ default: false, expected: 'true or false' }),
  /** How long a presigned URL stays valid. */
  redirectExpiry: duration('20m', { positive: true }),
  /** Where a cold fill spools the upstream's bytes while its multipart upload proceeds. */
  spoolPath: Type.String({ default: '', expected: 'a directory for spool files, or "" for <tmpdir>/ferry-spool' }),
  /** All spool files together at most; 0: no spool (a fill goes at the pace of its upload). */
  spoolSize: size('4GiB'),
})
type RawS3 = StaticDecode<typeof s3Section>

/** storage.s3 as code reads it; undefined means not set. */
export interface S3StorageConfig extends S3Settings {
  /** Whole-blob GETs are redirected to a presigned URL valid this many milliseconds; undefined: served by Ferry. */
  redirectMs: number | undefined
  /** The spool directory for cold fills; undefined: <tmpdir>/ferry-spool. */
  spoolPath: string | undefined
  /** Bytes of spool files at most; 0: none. */
  spoolBytes: number
}

export const storageSchema = Type.Transform(
  section({
    driver: oneOf(storageDrivers, 'filesystem'),
    filesystem: section({
      path: Type.String({ minLength: 1, default: './data', expected: 'a non-empty path' }),
    }),
    s3: s3Section,
    /** Whether DELETE of manifests, tags and blobs is allowed. */
    deleteEnabled: Type.Boolean({ default: true, expected: 'true or false' }),
    uploads: section({
      /** After which an abandoned upload session is purged. */
      maxAge: duration('24h', { positive: true }),
      /** Between purges of abandoned upload sessions. */
      purgeInterval: duration('1h', { positive: true }),
    }),
  }),
)
  .Decode(({ s3, ...storage }) => ({ ...storage, s3: decodeS3(s3, storage.driver === 's3') }))
  .Encode(({ s3, ...storage }) => ({ ...storage, s3: encodeS3(s3) }))

function decodeS3(raw: RawS3, inUse: boolean): S3StorageConfig {
  const fail = (key: string, problem: string) => new ConfigIssue(['s3', key], problem)
  if (inUse) {
    if (raw.bucket === '') throw fail('bucket', 'required when storage.driver is s3 (the bucket to store in)')
    if (raw.accessKeyId !== '' && raw.secretAccessKey === '')
      throw fail('secretAccessKey', 'required when storage.s3.accessKeyId is set (or set neither for the SDK default chain)')
    if (raw.secretAccessKey !== '' && raw.accessKeyId === '')
      throw fail('accessKeyId', 'required when storage.s3.secretAccessKey is set (or set neither for the SDK default chain)')
    if (raw.kmsKeyId !== '' && raw.sse !== 'aws:kms') throw fail('kmsKeyId', 'needs storage.s3.sse: aws:kms')
  }
  const unset = (value: string): string | undefined => (value === '' ? undefined : value)
  return {
    bucket: raw.bucket,
    prefix: raw.prefix,
    region: raw.region,
    endpoint: unset(raw.endpoint.replace(/\/$/, '')),
    forcePathStyle: raw.forcePathStyle,
    credentials:
      raw.accessKeyId === '' || raw.secretAccessKey === ''
        ? undefined
        : { accessKeyId: raw.accessKeyId, secretAccessKey: raw.secretAccessKey },
    storageClass: unset(raw.storageClass),
    sse: raw.sse === '' ? undefined : raw.sse === 'AES256' ? { type: 'AES256' } : { type: 'aws:kms', kmsKeyId: unset(raw.kmsKeyId) },
    caPath: unset(raw.caPath),
    maxSockets: raw.maxSockets,
    requestChecksumCalculation: raw.requestChecksumCalculation,
    redirectMs: raw.redirect ? raw.redirectExpiry : undefined,
    spoolPath: unset(raw.spoolPath),
    spoolBytes: raw.spoolSize,
  }
}

function encodeS3(s3: S3StorageConfig): RawS3 {
  return {
    bucket: s3.bucket,
    prefix: s3.prefix,
    region: s3.region,
    endpoint: s3.endpoint ?? '',
    forcePathStyle: s3.forcePathStyle,
    accessKeyId: s3.credentials?.accessKeyId ?? '',
    secretAccessKey: s3.credentials?.secretAccessKey ?? '',
    storageClass: s3.storageClass ?? '',
    sse: s3.sse?.type ?? '',
    kmsKeyId: s3.sse?.type === 'aws:kms' ? (s3.sse.kmsKeyId ?? '') : '',
    caPath: s3.caPath ?? '',
    maxSockets: s3.maxSockets,
    requestChecksumCalculation: s3.requestChecksumCalculation,
    redirect: s3.redirectMs !== undefined,
    redirectExpiry: s3.redirectMs ?? 20 * 60_000,
    spoolPath: s3.spoolPath ?? '',
    spoolSize: s3.spoolBytes,
  }
}
