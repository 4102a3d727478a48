// Credentials from a Google service-account key, for gcr.io and Artifact Registry
// (<region>-docker.pkg.dev), in either of Google's two flows:
// - jsonKey: Basic `_json_key:<the whole key JSON>` (or `_json_key_base64:<base64>`) against the
//   registry's own token endpoint. Needs only the registry reachable; the key leaves the machine.
// - oauth2: an RS256 JWT signed with the key (iss = client_email, aud = token_uri) exchanged at
//   token_uri for an access token, used as `oauth2accesstoken:<access token>`. The private key
//   never leaves the machine, but token_uri must be reachable.
import type { CredentialProvider, Credentials, FormPost } from '../client/credentials.js'
import type { CredentialFile } from './credential-file.js'
import type { ServiceAccountKey } from './service-account-key.js'

export const gcrKeyFlows = ['jsonKey', 'oauth2'] as const
export type GcrKeyFlow = (typeof gcrKeyFlows)[number]

export const cloudPlatformScope = 'https://www.googleapis.com/auth/cloud-platform'
const assertionLifetimeSeconds = 3600
const defaultAccessTokenSeconds = 3600

interface AccessToken {
  credentials: Credentials
  /** When to exchange again: shortly before the token expires. */
  refreshAt: number
  generation: number
}

export interface GcrKeyCredentialsOptions {
  key: CredentialFile<ServiceAccountKey>
  flow: GcrKeyFlow
  /** Required for `oauth2`: the token_uri exchange goes through client/. */
  post?: FormPost
  now?: () => number
}

export class GcrKeyCredentials implements CredentialProvider {
  readonly #key: CredentialFile<ServiceAccountKey>
  readonly #flow: GcrKeyFlow
  readonly #post: FormPost | undefined
  readonly #now: () => number
  #token: AccessToken | undefined
  /** One exchange at a time; concurrent callers share it. */
  #exchange: { generation: number; promise: Promise<AccessToken> } | undefined

  constructor(options: GcrKeyCredentialsOptions) {
    if (options.flow === 'oauth2' && options.post === undefined) throw new Error('the oauth2 flow needs a FormPost')
    this.#key = options.key
    this.#flow = options.flow
    this.#post = options.post
    this.#now = options.now ?? Date.now
  }

  generation(): number {
    return this.#key.generation
  }

  async credentials(): Promise<Credentials> {
    const key = this.#key.value
    if (this.#flow === 'jsonKey') return { username: key.base64 ? '_json_key_base64' : '_json_key', password: key.text }
    const generation = this.#key.generation
    const token = this.#token
    if (token !== undefined && token.generation === generation && this.#now() < token.refreshAt) return token.credentials
    if (this.#exchange === undefined || this.#exchange.generation !== generation) {
      const promise = this.#exchangeAssertion(key, generation).finally(() => {
        if (this.#exchange?.promise === promise) this.#exchange = undefined
      })
      this.#exchange = { generation, promise }
    }
    const fresh = await this.#exchange.promise
    // A rotation while exchanging: the old key's token may still serve this request, not later ones.
    if (fresh.generation === this.#key.generation) this.#token = fresh
    return fresh.credentials
  }

  async #exchangeAssertion(key: ServiceAccountKey, generation: number): Promise<AccessToken> {
    const issuedAt = Math.floor(this.#now() / 1000)
    // Loaded here: only a site with a gcr.io key file needs jose for it.
    const { SignJWT, importPKCS8 } = await import('jose')
    const privateKey = await importPKCS8(key.privateKey, 'RS256')
    const assertion = await new SignJWT({ scope: cloudPlatformScope })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(key.privateKeyId ? { kid: key.privateKeyId } : {}) })
      .setIssuer(key.clientEmail)
      .setAudience(key.tokenUri)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + assertionLifetimeSeconds)
      .sign(privateKey)
    const answer = await this.#post!(key.tokenUri, { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion })
    const accessToken = answer.access_token
    if (typeof accessToken !== 'string' || accessToken === '')
      throw new Error(`token_uri ${new URL(key.tokenUri).host} sent no access_token`)
    const expiresIn = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : defaultAccessTokenSeconds
    // Refresh with a fifth of the lifetime (at most 5 minutes) to spare.
    const margin = Math.min(300, expiresIn / 5)
    return {
      credentials: { username: 'oauth2accesstoken', password: accessToken },
      refreshAt: this.#now() + (expiresIn - margin) * 1000,
      generation,
    }
  }
}
