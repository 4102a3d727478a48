// Reading and checking an upstream's TLS files (CA bundle, client certificate and key) before a
// transport is built from them: at start-up, where a problem stops Ferry, and on every reload,
// where a problem keeps the transport in service. Errors name the config key and the file and
// never quote file contents (a key file's bytes must not reach a log).
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import type { TlsMaterial } from '../client/transport.js'
import type { UpstreamTlsConfig } from '../config/schema.js'

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

type FileBytes = Partial<Record<FileKey, Buffer>>

/** The checked material, and its bytes joined, so a reload can tell whether anything changed. */
export interface CheckedMaterial {
  material: TlsMaterial
  fingerprint: string
}

/** The files configured for this upstream (the ones to watch). */
export function configuredFiles(files: UpstreamFiles): string[] {
  const { caPath, certPath, keyPath } = files.tls
  return [caPath, certPath, keyPath].filter((p): p is string => p !== undefined)
}

export async function loadMaterial(files: UpstreamFiles): Promise<CheckedMaterial> {
  const bytes: FileBytes = {}
  for (const key of fileKeys) {
    const path = files.tls[key]
    if (path === undefined) continue
    try {
      bytes[key] = await readFile(path)
    } catch (err) {
      throw unreadable(files, key, path, err)
    }
  }
  return checkMaterial(files, bytes)
}

/** As loadMaterial, for start-up, where the mirror is composed synchronously. */
export function loadMaterialSync(files: UpstreamFiles): CheckedMaterial {
  const bytes: FileBytes = {}
  for (const key of fileKeys) {
    const path = files.tls[key]
    if (path === undefined) continue
    try {
      bytes[key] = readFileSync(path)
    } catch (err) {
      throw unreadable(files, key, path, err)
    }
  }
  return checkMaterial(files, bytes)
}

const fileKeys: FileKey[] = ['caPath', 'certPath', 'keyPath']

function unreadable(files: UpstreamFiles, key: FileKey, path: string, err: unknown): TransportFileError {
  const code = (err as { code?: unknown }).code
  return new TransportFileError(
    `${files.keyPrefix}.${key}`,
    path,
    `cannot be read (${typeof code === 'string' ? code : 'error'})`,
    files.upstream,
  )
}

function checkMaterial(files: UpstreamFiles, bytes: FileBytes): CheckedMaterial {
  const fail = (key: FileKey, problem: string): TransportFileError =>
    new TransportFileError(`${files.keyPrefix}.${key}`, files.tls[key] ?? '', problem, files.upstream)
  const material: TlsMaterial = { insecureSkipVerify: files.tls.insecureSkipVerify }
  if (bytes.caPath !== undefined) {
    parseCertificates(bytes.caPath, (problem) => fail('caPath', problem))
    material.ca = bytes.caPath
  }
  if (bytes.certPath !== undefined && bytes.keyPath !== undefined) {
    const chain = parseCertificates(bytes.certPath, (problem) => fail('certPath', problem))
    let key: KeyObject
    try {
      key = createPrivateKey(bytes.keyPath)
    } catch {
      throw fail('keyPath', 'is not a PEM private key')
    }
    if (key.asymmetricKeyType === undefined || !chain[0]!.checkPrivateKey(key)) {
      throw fail('keyPath', `is not the private key of the first certificate in ${files.tls.certPath}`)
    }
    material.cert = bytes.certPath
    material.key = bytes.keyPath
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
  const fingerprint = fileKeys.map((k) => bytes[k]?.toString('base64') ?? '-').join('|')
  return { material, fingerprint }
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

function parseCertificates(pem: Buffer, fail: (problem: string) => Error): X509Certificate[] {
  const blocks = pem.toString('utf8').match(pemCertificate) ?? []
  if (blocks.length === 0) throw fail('holds no PEM certificate (-----BEGIN CERTIFICATE-----)')
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block)
    } catch {
      throw fail(`certificate ${i + 1} of ${blocks.length} does not parse`)
    }
  })
}
