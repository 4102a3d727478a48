// PEM parsing for every certificate and key file Ferry reads: its own serving certificate (tls/)
// and an upstream's CA bundle and client certificate (upstream/). Pure: bytes in, parsed objects
// or a PemError out. A PemError's message says what is wrong and never quotes the content (a
// key file's bytes must not reach a log); the caller adds the config key and the file.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'

export class PemError extends Error {
  constructor(problem: string) {
    super(problem)
    this.name = 'PemError'
  }
}

const certificateBlock = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g
const privateKeyHeader = /-----BEGIN [A-Z ]*PRIVATE KEY-----/

/**
 * Every certificate in the file, in order; throws PemError when there is none or one is broken.
 * `keyFile` names the key's config key for the hint when the file holds a key instead.
 */
export function parseCertificates(bytes: Buffer, keyFile = 'the key file'): X509Certificate[] {
  const text = bytes.toString('latin1')
  const blocks = text.match(certificateBlock) ?? []
  if (blocks.length === 0) {
    const hint = privateKeyHeader.test(text) ? ` (it holds a private key: swapped with ${keyFile}?)` : ''
    throw new PemError(`no PEM certificate (-----BEGIN CERTIFICATE-----) found${hint}`)
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch {
      throw new PemError(`certificate ${i + 1} is not a valid X.509 certificate`)
    }
  })
}

/** The unencrypted private key in the file; throws PemError. `certFile` as `keyFile` above. */
export function parsePrivateKey(bytes: Buffer, certFile = 'the certificate file'): KeyObject {
  const text = bytes.toString('latin1')
  if (!privateKeyHeader.test(text)) {
    const hint = text.includes('-----BEGIN CERTIFICATE-----') ? ` (it holds a certificate: swapped with ${certFile}?)` : ''
    throw new PemError(`no PEM private key (-----BEGIN PRIVATE KEY-----) found${hint}`)
  }
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new PemError('the private key is encrypted; Ferry needs it unencrypted (protect the file instead)')
  }
  try {
    return createPrivateKey({ key: bytes, format: 'pem' })
  } catch {
    throw new PemError('the private key does not parse')
  }
}

/**
 * Whether `key` belongs to the first certificate of `chain`, as TLS needs: `first`; `later` when
 * it belongs to another one (an intermediate listed first, a common slip); `none` for a key of
 * another certificate altogether (also what a rotation caught between two renames looks like).
 */
export function keyPosition(chain: readonly X509Certificate[], key: KeyObject): 'first' | 'later' | 'none' {
  if (chain[0]?.checkPrivateKey(key) === true) return 'first'
  return chain.slice(1).some((c) => c.checkPrivateKey(key)) ? 'later' : 'none'
}
