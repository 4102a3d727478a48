// test/proxy/fanout.test.ts again, on the S3 driver (s3rver); see test/helpers/s3-matrix.ts.
import { onS3 } from '../helpers/s3-matrix.js'

await onS3(() => import('../proxy/fanout.test.js'))
