// Token signing keys. One current key signs; keys it replaced keep verifying until every token
// they signed has expired (the overlap), so rotating the key file never logs anyone out early.
// Tokens name their key by `kid` (the RFC 7638 thumbprint of its public JWK).
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import type { Logger } from 'pino'
import { ReloadableFiles, type ReloadEvent } from '../reload/reloadable-files.js'

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

/** The RFC 7638 thumbprint (SHA-256) of the key's public JWK, by node:crypto: jose is loaded only once tokens are used. */
async function thumbprint(publicKey: KeyObject): Promise<string> {
  const jwk = publicKey.export({ format: 'jwk' })
  // The required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
  const members =
    jwk.kty === 'RSA'
      ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : jwk.kty === 'EC'
        ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

export interface KeyRingOptions {
  /** PEM private key file, watched (a ReloadableFiles); undefined generates a key in memory. */
  file: string | undefined
  /** How long a replaced key keeps verifying: the longest lifetime of a token it may have signed. */
  overlapMs: number
  logger: Logger
  /** Told when a new key is in use (`ok`) and of every failed reload (`error`). */
  onReload?: (outcome: 'ok' | 'error') => void
  now?: () => number
}

export class KeyRing {
  private retired: Array<{ key: SigningKey; until: number }> = []
  private file: ReloadableFiles<SigningKey> | undefined
  private readonly now: () => number

  private constructor(
    private current: SigningKey,
    private readonly options: KeyRingOptions,
  ) {
    this.now = options.now ?? Date.now
  }

  static async open(options: KeyRingOptions): Promise<KeyRing> {
    const path = options.file
    if (path === undefined) return new KeyRing(await generateSigningKey(), options)
    let ring: KeyRing | undefined
    const file = await ReloadableFiles.open({
      paths: [path],
      parse: (contents) => readKey(path, contents[0]!),
      onEvent: (event) => ring?.report(event),
      onWatchError: (err) => options.logger.error({ err, file: path }, 'cannot watch the token key file; changes need a restart'),
    })
    ring = new KeyRing(file.value, options)
    ring.file = file
    void file.watch()
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

  /** Re-reads the key file; a broken one keeps the current key and logs one error per problem. */
  async reload(): Promise<boolean> {
    return (await this.file?.reload('SIGHUP')) !== 'failed'
  }

  close(): void {
    this.file?.close()
  }

  private report(event: ReloadEvent<SigningKey>): void {
    const { logger, onReload, file } = this.options
    if (event.result === 'reloaded') {
      const key = event.value
      const changed = key.kid !== this.current.kid
      this.rotate(key)
      if (changed) logger.info({ file, kid: key.kid, alg: key.alg }, 'token signing key rotated')
      onReload?.('ok')
    } else if (event.result === 'failed') {
      if (!event.repeated) {
        const problem = event.error instanceof Error ? event.error.message : String(event.error)
        logger.error({ file, problem }, `token key file ${file} is unusable, keeping the current key`)
      }
      onReload?.('error')
    }
  }
}

async function readKey(file: string, pem: Buffer): Promise<SigningKey> {
  try {
    return await signingKeyFromPem(pem.toString('utf8'))
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}
