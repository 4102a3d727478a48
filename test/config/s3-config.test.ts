// storage.s3: required keys when S3 is the driver, FERRY_STORAGE_S3_* overrides, and the secret
// kept out of `ferry config print`.
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { runCli } from '../../src/cli/main.js'
import { ConfigError, loadConfig } from '../../src/config/load.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected loadConfig to fail with a ConfigError')
}

t.test('driver s3 without a bucket is an error naming the key', async (t) => {
  const file = join(t.testdir({ 'ferry.yaml': 'storage:\n  driver: s3\n' }), 'ferry.yaml')
  const err = await configError(loadConfig({ file }))
  t.equal(err.key, 'storage.s3.bucket')
  t.match(err.message, /at storage\.s3\.bucket: required when storage\.driver is s3/)
  const fromEnv = await configError(loadConfig({ env: { FERRY_STORAGE_DRIVER: 's3' } }))
  t.equal(fromEnv.key, 'storage.s3.bucket')
})

t.test('half a key pair, or a KMS key without aws:kms, is an error', async (t) => {
  const base = { FERRY_STORAGE_DRIVER: 's3', FERRY_STORAGE_S3_BUCKET: 'b' }
  t.equal((await configError(loadConfig({ env: { ...base, FERRY_STORAGE_S3_ACCESS_KEY_ID: 'AKIA' } }))).key, 'storage.s3.secretAccessKey')
  t.equal((await configError(loadConfig({ env: { ...base, FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'x' } }))).key, 'storage.s3.accessKeyId')
  t.equal((await configError(loadConfig({ env: { ...base, FERRY_STORAGE_S3_KMS_KEY_ID: 'k' } }))).key, 'storage.s3.kmsKeyId')
  const bad = await configError(loadConfig({ env: { ...base, FERRY_STORAGE_S3_SSE: 'rot13' } }))
  t.equal(bad.key, 'storage.s3.sse')
  t.equal(bad.envVar, 'FERRY_STORAGE_S3_SSE')
})

t.test('every key has a FERRY_STORAGE_S3_* override', async (t) => {
  const config = await loadConfig({
    env: {
      FERRY_STORAGE_DRIVER: 's3',
      FERRY_STORAGE_S3_BUCKET: 'registry',
      FERRY_STORAGE_S3_PREFIX: 'ferry/prod',
      FERRY_STORAGE_S3_REGION: 'eu-west-1',
      FERRY_STORAGE_S3_ENDPOINT: 'https://minio.example:9000/',
      FERRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
      FERRY_STORAGE_S3_ACCESS_KEY_ID: 'AKIA',
      FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'hush',
      FERRY_STORAGE_S3_STORAGE_CLASS: 'STANDARD_IA',
      FERRY_STORAGE_S3_SSE: 'aws:kms',
      FERRY_STORAGE_S3_KMS_KEY_ID: 'alias/ferry',
      FERRY_STORAGE_S3_CA_PATH: '/etc/ca.pem',
      FERRY_STORAGE_S3_MAX_SOCKETS: '8',
      FERRY_STORAGE_S3_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      FERRY_STORAGE_S3_SPOOL_PATH: '/var/spool/ferry',
      FERRY_STORAGE_S3_SPOOL_SIZE: '1GiB',
    },
  })
  t.same(config.storage.s3, {
    bucket: 'registry',
    prefix: 'ferry/prod',
    region: 'eu-west-1',
    endpoint: 'https://minio.example:9000',
    forcePathStyle: true,
    credentials: { accessKeyId: 'AKIA', secretAccessKey: 'hush' },
    storageClass: 'STANDARD_IA',
    sse: { type: 'aws:kms', kmsKeyId: 'alias/ferry' },
    caPath: '/etc/ca.pem',
    maxSockets: 8,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    spoolPath: '/var/spool/ferry',
    spoolBytes: 1024 * 1024 * 1024,
  })
  t.equal(config.storage.driver, 's3')
})

t.test('a prefix with a leading slash is refused', async (t) => {
  const err = await configError(loadConfig({ env: { FERRY_STORAGE_S3_PREFIX: '/ferry' } }))
  t.equal(err.key, 'storage.s3.prefix')
})

t.test('config print masks the secret access key', async (t) => {
  const file = join(
    t.testdir({ 'ferry.yaml': 'storage:\n  driver: s3\n  s3:\n    bucket: b\n    accessKeyId: AKIA\n    secretAccessKey: very-secret\n' }),
    'ferry.yaml',
  )
  const fake = fakeIo()
  await runCli(['node', 'ferry', 'config', 'print', file], fake.io)
  t.notMatch(fake.stdout(), /very-secret/)
  const printed = parse(fake.stdout()) as { storage: { s3: { accessKeyId: string; secretAccessKey: string } } }
  t.equal(printed.storage.s3.accessKeyId, 'AKIA')
  t.equal(printed.storage.s3.secretAccessKey, '***')
})
