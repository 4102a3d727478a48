// Reading and checking a serving certificate set (certificate chain, private key, optional client
// CA bundle) before anything serves with it: at start-up, and on every reload, where a set that
// fails here never replaces the one in service. Errors name the config key and the file; they
// never quote file contents (a key file's bytes must not reach a log).
import type { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import { PemError, keyPosition, parseCertificates, parsePrivateKey } from './pem.js'

export interface TlsFiles {
  /** PEM: the serving certificate first, then its intermediates. */
  cert: string
  /** PEM: the private key of the first certificate in `cert`. */
  key: string
  /** PEM CA bundle for client certificates (mTLS). */
  clientCa?: string | undefined
}

export type TlsFileKey = 'tls.cert' | 'tls.key' | 'tls.clientCa'

/** A file that cannot serve: which config key, which file, what is wrong with it. */
export class TlsFileError extends Error {
  constructor(
    readonly configKey: TlsFileKey,
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${configKey} (${file}): ${problem}`)
    this.name = 'TlsFileError'
  }
}

/** The files' bytes as read. */
export interface TlsFileBytes {
  cert: Buffer
  key: Buffer
  clientCa: Buffer | undefined
}

export interface CertificateSet {
  bytes: TlsFileBytes
  /** The serving certificate (first of the chain). */
  leaf: X509Certificate
  /** Upper-case hex, as TLS clients report it. */
  serialNumber: string
  subject: string
  notBefore: Date
  notAfter: Date
  /** Findings that do not stop serving but deserve a log line (not yet valid, chain out of order). */
  warnings: string[]
}

export async function readTlsFiles(files: TlsFiles): Promise<TlsFileBytes> {
  const contents = await Promise.all(
    tlsFilePaths(files).map((file) =>
      readFile(file).catch((err: unknown) => {
        const code = (err as NodeJS.ErrnoException).code
        throw unreadableTlsFile(files, file, code ?? (err as Error).message)
      }),
    ),
  )
  return tlsFileBytes(contents)
}

/** The files in the order a reload reads them: certificate, key, then the CA bundle if set. */
export function tlsFilePaths(files: TlsFiles): string[] {
  return [files.cert, files.key, ...(files.clientCa === undefined ? [] : [files.clientCa])]
}

/** The inverse of tlsFileBytes. */
export function tlsFileContents(bytes: TlsFileBytes): Buffer[] {
  return [bytes.cert, bytes.key, ...(bytes.clientCa === undefined ? [] : [bytes.clientCa])]
}

/** The bytes of tlsFilePaths(files), as read. */
export function tlsFileBytes(contents: readonly Buffer[]): TlsFileBytes {
  return { cert: contents[0]!, key: contents[1]!, clientCa: contents[2] }
}

/** The error for one of the files that cannot be read (`code` as ENOENT). */
export function unreadableTlsFile(files: TlsFiles, file: string, code: string): TlsFileError {
  const configKey: TlsFileKey = file === files.cert ? 'tls.cert' : file === files.key ? 'tls.key' : 'tls.clientCa'
  return new TlsFileError(configKey, file, unreadableProblem(code))
}

function unreadableProblem(code: string): string {
  return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code})`
}

/** Reads and checks the files; throws TlsFileError for the first problem. */
export async function loadCertificateSet(files: TlsFiles, now: Date = new Date()): Promise<CertificateSet> {
  return checkCertificateSet(files, await readTlsFiles(files), now)
}

/**
 * Checks that the certificate file parses, that the key parses and belongs to the first
 * certificate, that this certificate has not expired, that the CA bundle parses, and that
 * OpenSSL accepts the whole set. Throws TlsFileError.
 */
export function checkCertificateSet(files: TlsFiles, bytes: TlsFileBytes, now: Date = new Date()): CertificateSet {
  const chain = pem('tls.cert', files.cert, () => parseCertificates(bytes.cert, 'tls.key'))
  const key = pem('tls.key', files.key, () => parsePrivateKey(bytes.key, 'tls.cert'))
  const leaf = chain[0]!
  const serialNumber = leaf.serialNumber.toUpperCase()
  switch (keyPosition(chain, key)) {
    case 'first':
      break
    case 'later':
      // An intermediate listed first is a common slip; say so rather than blame the key.
      throw new TlsFileError('tls.cert', files.cert, 'the certificate of the key must come first, before its intermediates')
    case 'none':
      throw new TlsFileError('tls.key', files.key, `does not match the certificate in tls.cert (${files.cert}, serial ${serialNumber})`)
  }
  const notBefore = new Date(leaf.validFrom)
  const notAfter = new Date(leaf.validTo)
  if (notAfter.getTime() <= now.getTime()) {
    throw new TlsFileError('tls.cert', files.cert, `the certificate expired on ${notAfter.toISOString()} (serial ${serialNumber})`)
  }
  const warnings: string[] = []
  if (notBefore.getTime() > now.getTime()) {
    warnings.push(
      `tls.cert (${files.cert}): the certificate is not valid until ${notBefore.toISOString()}; clients will refuse it until then`,
    )
  }
  chain.forEach((cert, i) => {
    const next = chain[i + 1]
    if (next !== undefined && !cert.checkIssued(next)) {
      warnings.push(
        `tls.cert (${files.cert}): certificate ${i + 2} did not issue certificate ${i + 1}; clients may fail to build the chain`,
      )
    }
    if (i > 0 && new Date(cert.validTo).getTime() <= now.getTime()) {
      warnings.push(`tls.cert (${files.cert}): intermediate certificate ${i + 1} (${cert.subject.replace(/\n/g, ', ')}) has expired`)
    }
  })
  if (files.clientCa !== undefined && bytes.clientCa !== undefined) {
    const cas = pem('tls.clientCa', files.clientCa, () => parseCertificates(bytes.clientCa!, 'tls.key'))
    cas.forEach((ca, i) => {
      if (!ca.ca) warnings.push(`tls.clientCa (${files.clientCa}): certificate ${i + 1} is not a CA certificate`)
    })
  }
  try {
    // Whatever OpenSSL would refuse when the server installs the set (an unsupported key type,
    // a policy violation), found now rather than at the first handshake.
    createSecureContext({ cert: bytes.cert, key: bytes.key, ...(bytes.clientCa ? { ca: bytes.clientCa } : {}) })
  } catch (err) {
    throw new TlsFileError('tls.cert', files.cert, `rejected by OpenSSL: ${(err as Error).message}`)
  }
  return {
    bytes,
    leaf,
    serialNumber,
    subject: leaf.subject.replace(/\n/g, ', '),
    notBefore,
    notAfter,
    warnings,
  }
}

/** Runs a PEM parse, naming the config key and file in its error. */
function pem<T>(configKey: TlsFileKey, file: string, parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    if (err instanceof PemError) throw new TlsFileError(configKey, file, err.message)
    throw err
  }
}
