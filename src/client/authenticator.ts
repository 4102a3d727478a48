// Answers 401 challenges for one registry: Basic credentials, or a Bearer token from the realm
// the challenge names (the Docker token protocol). Tokens are cached per (realm, service, scope)
// until shortly before they expire, and each registry origin's challenge is remembered so later
// requests carry a token from the start instead of paying a 401 round trip each time.
import { LRUCache } from 'lru-cache'
import { ClientError } from './client-error.js'
import { basicAuthorization, identityTokenUsername, type CredentialProvider, type Credentials } from './credentials.js'
import { describe, type ClientResponse, type Exchange } from './http-exchange.js'
import { readTokenAnswer } from './token-answer.js'
import { parseWwwAuthenticate, type Challenge } from './www-authenticate.js'

/** Sends one request without authentication handling (retries and timeouts apply). */
export type Send = (exchange: Exchange) => Promise<ClientResponse>

export interface AuthenticatorOptions {
  /** The registry's host as credentials are keyed (`gcr.io`, `127.0.0.1:5001`). */
  host: string
  credentials?: CredentialProvider
  send: Send
  userAgent: string
  now?: () => number
}

interface CachedToken {
  authorization: string
  /** How long it may be used: its expires_in, less a margin. */
  ttlMs: number
  /** The credential generation it was minted with. */
  generation: number
}

const defaultExpiresInSeconds = 60
const maxTokenResponseBytes = 1024 * 1024
const maxCachedTokens = 1_000

export class Authenticator {
  readonly #options: AuthenticatorOptions
  readonly #now: () => number
  /** The last usable challenge per registry origin. */
  readonly #challenges = new Map<string, Challenge>()
  /** Tokens by realm, service and scope, each kept for its own lifetime. */
  readonly #tokens: LRUCache<string, CachedToken>
  /** Token requests in flight, so concurrent requests for one scope share one token fetch. */
  readonly #inflight = new Map<string, Promise<CachedToken>>()
  /** The credential generation the cached tokens belong to. */
  #generation = 0

  constructor(options: AuthenticatorOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
    const now = this.#now
    this.#tokens = new LRUCache<string, CachedToken>({ max: maxCachedTokens, perf: { now } })
  }

  /** Authorization to send up front to `origin`, from what an earlier challenge taught us. */
  async preemptive(origin: string, scope: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.#challenges.get(origin)
    if (challenge === undefined) return undefined
    if (challenge.scheme === 'basic') return this.#basic()
    const tokenScope = scope ?? challenge.params.scope
    return this.#bearer(challenge, tokenScope, undefined, signal)
  }

  /**
   * Answers a 401 from `origin`: the Authorization to retry with, or undefined when we have
   * nothing better to send than `rejected` (what the failed request carried).
   */
  async respond(
    origin: string,
    wwwAuthenticate: readonly string[],
    scope: string | undefined,
    rejected: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> {
    const challenges = parseWwwAuthenticate(wwwAuthenticate)
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm !== undefined)
    const challenge = bearer ?? challenges.find((c) => c.scheme === 'basic')
    if (challenge === undefined) return undefined
    this.#challenges.set(origin, challenge)
    const authorization =
      challenge.scheme === 'basic' ? await this.#basic() : await this.#bearer(challenge, challenge.params.scope ?? scope, rejected, signal)
    return authorization === rejected ? undefined : authorization
  }

  async #basic(): Promise<string | undefined> {
    const credentials = await this.#credentials()
    return credentials && basicAuthorization(credentials)
  }

  /**
   * The provider's credentials now. A provider failure (a key file's OAuth2 exchange that could
   * not be made) becomes a ClientError so it reaches clients as an upstream problem.
   */
  async #credentials(): Promise<Credentials | undefined> {
    const provider = this.#options.credentials
    if (provider === undefined) return undefined
    try {
      return await provider.credentials(this.#options.host)
    } catch (err) {
      if (err instanceof ClientError) throw err
      throw new ClientError('auth', `credentials for ${this.#options.host}: ${err instanceof Error ? err.message : 'unavailable'}`, {
        cause: err,
      })
    }
  }

  /** Drops every token minted with credentials that have since been replaced (a rotated key). */
  #currentGeneration(): number {
    const generation = this.#options.credentials?.generation?.() ?? 0
    if (generation !== this.#generation) {
      this.#generation = generation
      this.#tokens.clear()
    }
    return generation
  }

  async #bearer(challenge: Challenge, scope: string | undefined, rejected: string | undefined, signal?: AbortSignal): Promise<string> {
    const realm = challenge.params.realm ?? ''
    const service = challenge.params.service
    const generation = this.#currentGeneration()
    const key = `${realm}\n${service ?? ''}\n${scope ?? ''}`
    const cached = this.#tokens.get(key)
    if (cached !== undefined && cached.authorization !== rejected) return cached.authorization
    this.#tokens.delete(key)

    // Keyed by generation too: a fetch that started with replaced credentials is not joined.
    const flightKey = `${generation}\n${key}`
    let pending = this.#inflight.get(flightKey)
    if (pending === undefined) {
      // Shared by every waiter, so it runs under the transport's timeouts, not one caller's signal.
      pending = this.#fetchToken(realm, service, scope, generation).finally(() => this.#inflight.delete(flightKey))
      this.#inflight.set(flightKey, pending)
    }
    const token = await abortable(pending, signal)
    if (token.generation === this.#generation) this.#remember(key, token)
    return token.authorization
  }

  #remember(key: string, token: CachedToken): void {
    if (token.ttlMs > 0) this.#tokens.set(key, token, { ttl: token.ttlMs })
  }

  async #fetchToken(realm: string, service: string | undefined, scope: string | undefined, generation: number): Promise<CachedToken> {
    let realmUrl: URL
    try {
      realmUrl = new URL(realm)
    } catch {
      throw new ClientError('protocol', `token realm of ${this.#options.host} is not a URL`)
    }
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') {
      throw new ClientError('protocol', `token realm of ${this.#options.host} is not http(s)`)
    }
    const credentials = await this.#credentials()
    if (credentials?.username === identityTokenUsername) {
      return this.#tokenFromResponse(await this.#postForm(realmUrl, service, scope, credentials), realmUrl, generation)
    }
    const response = await this.#getToken(realmUrl, service, scope, credentials)
    // Some OAuth2 token servers take only the POST form; try it when we have credentials to offer.
    if (credentials !== undefined && response.status >= 400 && response.status < 500) {
      await response.dump()
      return this.#tokenFromResponse(await this.#postForm(realmUrl, service, scope, credentials), realmUrl, generation)
    }
    return this.#tokenFromResponse(response, realmUrl, generation)
  }

  #getToken(realm: URL, service: string | undefined, scope: string | undefined, credentials?: Credentials): Promise<ClientResponse> {
    const url = new URL(realm)
    if (service !== undefined) url.searchParams.set('service', service)
    for (const s of splitScope(scope)) url.searchParams.append('scope', s)
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, accept: 'application/json' }
    if (credentials !== undefined) headers.authorization = basicAuthorization(credentials)
    return this.#options.send({ method: 'GET', url, headers })
  }

  #postForm(realm: URL, service: string | undefined, scope: string | undefined, credentials: Credentials): Promise<ClientResponse> {
    const form = new URLSearchParams()
    if (credentials.username === identityTokenUsername) {
      form.set('grant_type', 'refresh_token')
      form.set('refresh_token', credentials.password)
    } else {
      form.set('grant_type', 'password')
      form.set('username', credentials.username)
      form.set('password', credentials.password)
    }
    if (service !== undefined) form.set('service', service)
    const scopes = splitScope(scope)
    if (scopes.length > 0) form.set('scope', scopes.join(' '))
    form.set('client_id', 'ferry')
    const headers = {
      'user-agent': this.#options.userAgent,
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
    }
    return this.#options.send({ method: 'POST', url: realm, headers, body: form.toString() })
  }

  async #tokenFromResponse(response: ClientResponse, realm: URL, generation: number): Promise<CachedToken> {
    const what = describe('token', realm)
    const { token, access_token: accessToken, expires_in: expiresIn } = await readTokenAnswer(response, what, maxTokenResponseBytes)
    const value = typeof token === 'string' && token !== '' ? token : typeof accessToken === 'string' ? accessToken : ''
    if (value === '') throw new ClientError('protocol', `${what}: response has no token`)
    const seconds = typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : defaultExpiresInSeconds
    // Renew a little early so a token never expires between our check and the upstream's.
    const margin = Math.min(30, seconds / 5)
    return { authorization: `Bearer ${value}`, ttlMs: (seconds - margin) * 1000, generation }
  }
}

function splitScope(scope: string | undefined): string[] {
  return (scope ?? '').split(' ').filter((s) => s !== '')
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
