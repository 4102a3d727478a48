// Token signing keys. One current key signs; keys it replaced keep verifying until every token
// they signed has expired (the overlap), so rotating the key file never logs anyone out early.
// Tokens name their key by `kid` (the RFC 7638 thumbprint of its public JWK).
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { calculateJwkThumbprint, exportJWK } from 'jose'
import type { Logger } from 'pino'
import { watchFile, type FileWatch } from '../reload/file-watch.js'

export interface SigningKey {
  kid: string
  alg: 'ES256' | 'ES384' | 'RS256' | 'EdDSA'
  privateKey: KeyObject
  publicKey: KeyObject
}

/** The algorithms a key may verify with: asymmetric only, so `none` and HMAC confusion are impossible. */
export const tokenAlgorithms = ['ES256', 'ES384', 'RS256', 'EdDSA'] as const

export async function signingKeyFromPem(pem: string): Promise<SigningKey> {
  const privateKey = createPrivateKey(pem)
  const publicKey = createPublicKey(privateKey)
  const details = privateKey.asymmetricKeyDetails ?? {}
  let alg: SigningKey['alg']
  switch (privateKey.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') alg = 'ES256'
      else if (details.namedCurve === 'secp384r1') alg = 'ES384'
      else throw new Error(`unsupported EC curve ${details.namedCurve ?? '?'} (use P-256 or P-384)`)
      break
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw new Error('RSA keys must have at least 2048 bits')
      alg = 'RS256'
      break
    case 'ed25519':
      alg = 'EdDSA'
      break
    default:
      throw new Error(`unsupported key type ${privateKey.asymmetricKeyType ?? '?'} (use EC P-256, RSA or Ed25519)`)
  }
  return { kid: await thumbprint(publicKey), alg, privateKey, publicKey }
}

export async function generateSigningKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  return { kid: await thumbprint(publicKey), alg: 'ES256', privateKey, publicKey }
}

async function thumbprint(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey))
}

export interface KeyRingOptions {
  /** PEM private key file, watched; undefined generates a key in memory. */
  file: string | undefined
  /** How long a replaced key keeps verifying: the longest lifetime of a token it may have signed. */
  overlapMs: number
  logger: Logger
  onReload?: (outcome: 'ok' | 'error') => void
  now?: () => number
}

export class KeyRing {
  private retired: Array<{ key: SigningKey; until: number }> = []
  private watcher: FileWatch | undefined
  private readonly now: () => number

  private constructor(
    private current: SigningKey,
    private readonly options: KeyRingOptions,
  ) {
    this.now = options.now ?? Date.now
  }

  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const key = options.file === undefined ? await generateSigningKey() : await readKey(options.file)
    const ring = new KeyRing(key, options)
    if (options.file !== undefined) {
      ring.watcher = watchFile(options.file, () => void ring.reload(), {
        onError: (err) => options.logger.error({ err, file: options.file }, 'cannot watch the token key file; changes need a restart'),
      })
    }
    return ring
  }

  get signing(): SigningKey {
    return this.current
  }

  /** The key that verifies tokens naming `kid`: the current one, or a replaced one still in its overlap. */
  verifying(kid: string | undefined): SigningKey | undefined {
    if (kid === this.current.kid) return this.current
    const now = this.now()
    return this.retired.find((r) => r.key.kid === kid && r.until > now)?.key
  }

  /** Makes `key` the signing key; the previous one keeps verifying for the overlap. */
  rotate(key: SigningKey): void {
    if (key.kid === this.current.kid) return
    const now = this.now()
    this.retired = [
      ...this.retired.filter((r) => r.until > now && r.key.kid !== key.kid),
      { key: this.current, until: now + this.options.overlapMs },
    ]
    this.current = key
  }

  /** Re-reads the key file; a broken one keeps the current key and logs one error. */
  async reload(): Promise<boolean> {
    const file = this.options.file
    if (file === undefined) return true
    try {
      const key = await readKey(file)
      const changed = key.kid !== this.current.kid
      this.rotate(key)
      if (changed) this.options.logger.info({ file, kid: key.kid, alg: key.alg }, 'token signing key rotated')
      this.options.onReload?.('ok')
      return true
    } catch (err) {
      this.options.logger.error(
        { file, problem: err instanceof Error ? err.message : String(err) },
        `token key file ${file} is unusable, keeping the current key`,
      )
      this.options.onReload?.('error')
      return false
    }
  }

  close(): void {
    this.watcher?.close()
  }
}

async function readKey(file: string): Promise<SigningKey> {
  const pem = await readFile(file, 'utf8')
  try {
    return await signingKeyFromPem(pem)
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}
