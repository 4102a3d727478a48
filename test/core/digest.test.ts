import t from 'tap'
import { digestAlgorithm, digestBytes, digestEncoded, parseDigest, tryParseDigest } from '../../src/core/digest.js'

const sha256 = `sha256:${'a'.repeat(64)}`
const sha512 = `sha512:${'b'.repeat(128)}`

t.test('accepts well-formed sha256 and sha512 digests', async (t) => {
  t.equal(tryParseDigest(sha256), sha256)
  t.equal(tryParseDigest(sha512), sha512)
  t.equal(digestAlgorithm(parseDigest(sha512)), 'sha512')
  t.equal(digestEncoded(parseDigest(sha256)), 'a'.repeat(64))
})

t.test('rejects malformed and unsupported digests', async (t) => {
  const bad = [
    '',
    'sha256',
    'sha256:',
    `sha256:${'a'.repeat(63)}`,
    `sha256:${'a'.repeat(65)}`,
    `sha256:${'A'.repeat(64)}`, // the spec mandates lowercase hex for sha256
    `sha256:${'g'.repeat(64)}`,
    `sha512:${'b'.repeat(64)}`,
    `md5:${'a'.repeat(32)}`,
    `SHA256:${'a'.repeat(64)}`,
    `sha256:../${'a'.repeat(61)}`,
    `sha256:${'a'.repeat(64)}/x`,
    `${sha256}\n`,
    'sha256:totallywrong',
  ]
  for (const value of bad) t.equal(tryParseDigest(value), undefined, JSON.stringify(value))
  t.throws(() => parseDigest('sha256:zz'), { name: 'RegistryError', code: 'DIGEST_INVALID' })
})

t.test('digestBytes hashes with the requested algorithm', async (t) => {
  t.equal(digestBytes(Buffer.from('')), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  t.match(digestBytes(Buffer.from('x'), 'sha512'), /^sha512:[0-9a-f]{128}$/)
})
