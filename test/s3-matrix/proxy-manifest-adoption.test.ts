// test/proxy/manifest-adoption.test.ts again, on the S3 driver (s3rver); see test/s3-matrix/storage.ts.
import { onS3 } from './storage.js'

await onS3(() => import('../proxy/manifest-adoption.test.js'))
