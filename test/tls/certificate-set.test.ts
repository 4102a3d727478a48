// Checking a certificate set before it serves: each broken file gives an error that names the
// config key and the file, and says what is wrong, without quoting the file.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { TlsFileError, loadCertificateSet } from '../../src/tls/certificate-set.js'
import { issueClientCert, issueServerCert, makeCa, makeIntermediateCa, pkiUnavailable, type Ca, type IssuedCert } from '../helpers/pki.js'

const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `tls certificate tests skipped: ${why}`)
} else {
  await main()
}

async function main(): Promise<void> {
  const dir = t.testdir({})
  const ca: Ca = await makeCa(join(dir, 'root'))
  const intermediate = await makeIntermediateCa(ca, join(dir, 'intermediate'))
  const good: IssuedCert = await issueServerCert(ca, { cn: 'ferry.test', name: 'good' })
  const other = await issueServerCert(ca, { cn: 'other.test', name: 'other' })
  const expired = await issueServerCert(ca, { cn: 'expired.test', name: 'expired', startDaysAgo: 30, days: -1 })
  const future = await issueServerCert(ca, { cn: 'future.test', name: 'future', startDaysAgo: -2, days: 30 })
  const chained = await issueServerCert(intermediate, { cn: 'chained.test', name: 'chained' })
  const client = await issueClientCert(ca, { cn: 'client', name: 'client' })
  const file = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }

  /** The TlsFileError a load fails with. */
  const failure = async (files: Parameters<typeof loadCertificateSet>[0]): Promise<TlsFileError> => {
    try {
      await loadCertificateSet(files)
    } catch (err) {
      if (err instanceof TlsFileError) return err
      throw err
    }
    throw new Error('expected loadCertificateSet to fail')
  }

  t.test('a valid certificate and key load with serial, subject and validity', async (t) => {
    const set = await loadCertificateSet({ cert: good.certPath, key: good.keyPath })
    t.equal(set.serialNumber, good.serialNumber)
    t.equal(set.subject, 'CN=ferry.test')
    t.equal(set.notAfter.getTime(), good.notAfter.getTime())
    t.ok(set.notBefore.getTime() < Date.now())
    t.same(set.warnings, [])
    t.ok(set.bytes.cert.equals(Buffer.from(good.certPem)), 'the bytes as read, for the secure context')
  })

  t.test('a chain file (certificate + intermediate) loads; the leaf is the first certificate', async (t) => {
    const set = await loadCertificateSet({ cert: chained.fullChainPath, key: chained.keyPath })
    t.equal(set.serialNumber, chained.serialNumber)
    t.same(set.warnings, [])
  })

  t.test('an intermediate listed before the certificate is called out', async (t) => {
    const swapped = await file('swapped-chain.crt', intermediate.certPem + chained.certPem)
    const err = await failure({ cert: swapped, key: chained.keyPath })
    t.equal(err.configKey, 'tls.cert')
    t.equal(err.message, `tls.cert (${swapped}): the certificate of the key must come first, before its intermediates`)
  })

  t.test('a key of another certificate is refused, naming both files', async (t) => {
    const err = await failure({ cert: good.certPath, key: other.keyPath })
    t.equal(err.configKey, 'tls.key')
    t.equal(err.file, other.keyPath)
    t.equal(
      err.message,
      `tls.key (${other.keyPath}): does not match the certificate in tls.cert (${good.certPath}, serial ${good.serialNumber})`,
    )
  })

  t.test('an expired certificate is refused with its end date', async (t) => {
    const err = await failure({ cert: expired.certPath, key: expired.keyPath })
    t.equal(err.configKey, 'tls.cert')
    t.match(
      err.message,
      `tls.cert (${expired.certPath}): the certificate expired on ${expired.notAfter.toISOString()} (serial ${expired.serialNumber})`,
    )
  })

  t.test('a certificate that is not valid yet loads with a warning', async (t) => {
    const set = await loadCertificateSet({ cert: future.certPath, key: future.keyPath })
    t.equal(set.warnings.length, 1)
    t.match(set.warnings[0], /not valid until .*clients will refuse it until then/)
  })

  t.test('garbage, swapped and missing files say what they are', async (t) => {
    const garbage = await file('garbage.pem', 'this is not PEM at all\n')
    const brokenCert = await file('broken.crt', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
    const brokenKey = await file('broken.key', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
    const cases: Array<[Parameters<typeof loadCertificateSet>[0], string, string]> = [
      [{ cert: garbage, key: good.keyPath }, 'tls.cert', `tls.cert (${garbage}): no PEM certificate (-----BEGIN CERTIFICATE-----) found`],
      [{ cert: good.certPath, key: garbage }, 'tls.key', `tls.key (${garbage}): no PEM private key (-----BEGIN PRIVATE KEY-----) found`],
      [{ cert: brokenCert, key: good.keyPath }, 'tls.cert', `tls.cert (${brokenCert}): certificate 1 is not a valid X.509 certificate`],
      [{ cert: good.certPath, key: brokenKey }, 'tls.key', `tls.key (${brokenKey}): the private key does not parse`],
      [
        { cert: good.keyPath, key: good.certPath },
        'tls.cert',
        `tls.cert (${good.keyPath}): no PEM certificate (-----BEGIN CERTIFICATE-----) found (it holds a private key: swapped with tls.key?)`,
      ],
      [{ cert: join(dir, 'absent.crt'), key: good.keyPath }, 'tls.cert', `tls.cert (${join(dir, 'absent.crt')}): no such file`],
      [
        { cert: good.certPath, key: good.keyPath, clientCa: garbage },
        'tls.clientCa',
        `tls.clientCa (${garbage}): no PEM certificate (-----BEGIN CERTIFICATE-----) found`,
      ],
    ]
    for (const [files, key, message] of cases) {
      const err = await failure(files)
      t.equal(err.configKey, key, message)
      t.equal(err.message, message)
    }
  })

  t.test('an encrypted key is refused with the reason', async (t) => {
    const encrypted = await file('encrypted.key', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n')
    const err = await failure({ cert: good.certPath, key: encrypted })
    t.equal(err.configKey, 'tls.key')
    t.match(err.message, 'the private key is encrypted')
  })

  t.test('error messages never contain key material', async (t) => {
    const err = await failure({ cert: good.keyPath, key: good.certPath })
    const body = good.keyPem.split('\n')[1] ?? ''
    t.ok(body.length > 20)
    t.notMatch(err.message, body)
  })

  t.test('a client CA bundle loads; a non-CA certificate in it is a warning', async (t) => {
    const set = await loadCertificateSet({ cert: good.certPath, key: good.keyPath, clientCa: ca.certPath })
    t.same(set.warnings, [])
    t.ok(set.bytes.clientCa?.equals(Buffer.from(ca.certPem)))
    const leafAsCa = await loadCertificateSet({ cert: good.certPath, key: good.keyPath, clientCa: client.certPath })
    t.match(leafAsCa.warnings, [/tls.clientCa .*certificate 1 is not a CA certificate/])
  })
}
