// Checking an upstream's TLS files (CA bundle, client certificate and key, read together by
// reload/) before a transport is built from them: at start-up, where a problem stops Ferry, and
// on every reload, where a problem keeps the transport in service. Errors name the config key and the file and
// never quote file contents (a key file's bytes must not reach a log).
import { createSecureContext } from 'node:tls'
import type { TlsMaterial } from '../client/transport.js'
import type { UpstreamTlsConfig } from '../config/schema.js'
import { PemError, keyPosition, parseCertificates, parsePrivateKey } from '../tls/pem.js'

type FileKey = 'caPath' | 'certPath' | 'keyPath'

/** A file that cannot be used: which config key, which file, what is wrong with it. */
export class TransportFileError extends Error {
  constructor(
    /** Dotted config key, e.g. `mirror.upstreams.0.tls.caPath`. */
    readonly configKey: string,
    readonly file: string,
    readonly problem: string,
    readonly upstream: string,
  ) {
    super(`${configKey} (${file}) of upstream ${upstream}: ${problem}`)
    this.name = 'TransportFileError'
  }
}

export interface UpstreamFiles {
  /** The upstream's name, for messages. */
  upstream: string
  /** Dotted key of the upstream's tls section, e.g. `mirror.upstreams.0.tls`. */
  keyPrefix: string
  tls: UpstreamTlsConfig
}

const fileKeys: FileKey[] = ['caPath', 'certPath', 'keyPath']

/** The keys of the files configured for this upstream, in the order they are read. */
function configuredKeys(files: UpstreamFiles): FileKey[] {
  return fileKeys.filter((key) => files.tls[key] !== undefined)
}

/** The files configured for this upstream (read together, and watched). */
export function transportFilePaths(files: UpstreamFiles): string[] {
  return configuredKeys(files).map((key) => files.tls[key]!)
}

/** The error for one of the files that cannot be read (`code` as ENOENT). */
export function unreadableTransportFile(files: UpstreamFiles, path: string, code: string): TransportFileError {
  const key = configuredKeys(files).find((k) => files.tls[k] === path) ?? 'caPath'
  return new TransportFileError(`${files.keyPrefix}.${key}`, path, `cannot be read (${code})`, files.upstream)
}

/**
 * Checks the contents of transportFilePaths(files), read together: the CA bundle parses, the
 * client key parses and belongs to the client certificate (a rotation caught between two renames
 * fails here rather than shows upstreams a mismatched pair), and OpenSSL accepts them. Throws
 * TransportFileError.
 */
export function checkMaterial(files: UpstreamFiles, contents: readonly Buffer[]): TlsMaterial {
  const bytes: Partial<Record<FileKey, Buffer>> = {}
  configuredKeys(files).forEach((key, i) => (bytes[key] = contents[i]))
  const fail = (key: FileKey, problem: string): TransportFileError =>
    new TransportFileError(`${files.keyPrefix}.${key}`, files.tls[key] ?? '', problem, files.upstream)
  const pem = <T>(key: FileKey, parse: () => T): T => {
    try {
      return parse()
    } catch (err) {
      if (err instanceof PemError) throw fail(key, err.message)
      throw err
    }
  }
  const material: TlsMaterial = { insecureSkipVerify: files.tls.insecureSkipVerify }
  if (bytes.caPath !== undefined) {
    const ca = bytes.caPath
    pem('caPath', () => parseCertificates(ca, `${files.keyPrefix}.keyPath`))
    material.ca = ca
  }
  if (bytes.certPath !== undefined && bytes.keyPath !== undefined) {
    const { certPath, keyPath } = bytes
    const chain = pem('certPath', () => parseCertificates(certPath, `${files.keyPrefix}.keyPath`))
    const key = pem('keyPath', () => parsePrivateKey(keyPath, `${files.keyPrefix}.certPath`))
    if (keyPosition(chain, key) !== 'first') {
      throw fail('keyPath', `is not the private key of the first certificate in ${files.tls.certPath}`)
    }
    material.cert = certPath
    material.key = keyPath
  }
  // OpenSSL has the last word (unsupported algorithms, odd encodings).
  try {
    createSecureContext({
      ...(material.ca ? { ca: material.ca } : {}),
      ...(material.cert ? { cert: material.cert, key: material.key } : {}),
    })
  } catch (err) {
    const code = (err as { code?: unknown }).code
    throw fail(material.cert ? 'certPath' : 'caPath', `rejected by OpenSSL (${typeof code === 'string' ? code : 'error'})`)
  }
  return material
}
