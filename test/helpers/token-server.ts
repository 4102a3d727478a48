// A Docker token server for tests, standing in for gcr.io's and Google's: it mints RS256 JWTs
// whose x5c certificate chains to what distribution (`auth: token`) trusts, for
// - Basic `_json_key:<key JSON>` / `_json_key_base64:<base64>` whose key is a registered service
//   account's current key (a rotated-away key is refused: revoked);
// - Basic `oauth2accesstoken:<access token>` from its own OAuth2 token_uri (/oauth2/token), which
//   verifies the JWT-bearer assertion against the account's registered public key;
// - Basic user:password, and the POST form (password and refresh_token grants).
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, decodeJwt, importPKCS8, jwtVerify } from 'jose'
import { sendJson, startStub, type HttpStub, type RecordedRequest } from './http-stub.js'
import { run } from './tools.js'

export const cloudPlatformScope = 'https://www.googleapis.com/auth/cloud-platform'

export interface ServiceAccount {
  email: string
  /** The key file's JSON, as `gcloud iam service-accounts keys create` writes it. */
  keyJson: string
  privateKeyPem: string
}

export interface TokenServer {
  /** http://127.0.0.1:PORT */
  url: string
  realm: string
  tokenUri: string
  service: string
  issuer: string
  /** PEM file distribution's rootcertbundle points at. */
  rootCertBundle: string
  /** A fresh key for `email`, registered as its only valid key (older keys are revoked). */
  rotateKey(email: string): ServiceAccount
  /** Accepts Basic `username:password` (and the password grant). */
  addUser(username: string, password: string): void
  /** Accepts this refresh token (an identity token) for the refresh_token grant. */
  addRefreshToken(token: string, subject: string): void
  /** Subjects refused any access, even with valid credentials (tokens with an empty access list). */
  denyAccess(subject: string): void
  /** Who got registry tokens, in order: `json_key:<email>`, `oauth2:<email>`, `user:<name>`, `refresh:<subject>`. */
  grants: string[]
  /** Every registry token and access token handed out (to check none was logged). */
  issued: string[]
  requests: RecordedRequest[]
  close(): Promise<void>
}

export interface TokenServerOptions {
  /**
   * The `expires_in` answered (seconds; default 300). A short one makes Ferry ask again soon, so
   * a revocation reaches it quickly; the JWT itself stays valid for 300 s either way.
   */
  expiresIn?: number
}

export async function startTokenServer(options: TokenServerOptions = {}): Promise<TokenServer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-token-server-'))
  const keyPath = join(dir, 'signer.key')
  const certPath = join(dir, 'signer.crt')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=ferry-test-token-signer',
  ])
  const signingKey = await importPKCS8(await readFile(keyPath, 'utf8'), 'RS256')
  const x5c = new X509Certificate(await readFile(certPath)).raw.toString('base64')

  const service = 'ferry-test-registry'
  const issuer = 'ferry-test-token-server'
  const accounts = new Map<string, KeyObject>() // email → current public key
  const accessTokens = new Map<string, { email: string; key: KeyObject }>()
  const users = new Map<string, string>()
  const refreshTokens = new Map<string, string>()
  const denied = new Set<string>()
  const grants: string[] = []
  const issued: string[] = []

  const currentKey = (email: string, key: KeyObject) => accounts.get(email)?.equals(key) === true

  const registryToken = async (subject: string, scopes: string[]): Promise<string> => {
    const access = denied.has(subject)
      ? []
      : scopes.flatMap((scope) => {
          const [type, name, actions] = scope.split(':')
          return type === 'repository' && name && actions ? [{ type, name, actions: actions.split(',').filter((a) => a === 'pull') }] : []
        })
    const now = Math.floor(Date.now() / 1000)
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5c: [x5c] })
      .setIssuer(issuer)
      .setSubject(subject)
      .setAudience(service)
      .setIssuedAt(now - 5)
      .setNotBefore(now - 5)
      .setExpirationTime(now + 300)
      .setJti(randomBytes(8).toString('hex'))
      .sign(signingKey)
    issued.push(token)
    return token
  }

  /** The subject Basic credentials stand for, or undefined when refused. */
  const basicSubject = (username: string, password: string): string | undefined => {
    if (username === '_json_key' || username === '_json_key_base64') {
      try {
        const json = username === '_json_key' ? password : Buffer.from(password, 'base64').toString('utf8')
        const key = JSON.parse(json) as { client_email: string; private_key: string }
        if (!currentKey(key.client_email, createPublicKey(key.private_key))) return undefined
        return `json_key:${key.client_email}`
      } catch {
        return undefined
      }
    }
    if (username === 'oauth2accesstoken') {
      const entry = accessTokens.get(password)
      return entry && currentKey(entry.email, entry.key) ? `oauth2:${entry.email}` : undefined
    }
    return users.get(username) === password ? `user:${username}` : undefined
  }

  const stub: HttpStub = await startStub(async (request, response) => {
    const url = new URL(request.url, 'http://token.test')
    if (url.pathname === '/oauth2/token' && request.method === 'POST') {
      const form = new URLSearchParams(request.body.toString())
      if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
        return sendJson(response, 400, { error: 'unsupported_grant_type' })
      const assertion = form.get('assertion') ?? ''
      try {
        const email = decodeJwt(assertion).iss ?? ''
        const key = accounts.get(email)
        if (!key) throw new Error('unknown account')
        const { payload } = await jwtVerify(assertion, key, { algorithms: ['RS256'], issuer: email, audience: `${stub.url}/oauth2/token` })
        if (payload.scope !== cloudPlatformScope) throw new Error('scope')
        const accessToken = `ya29.${randomBytes(24).toString('hex')}`
        accessTokens.set(accessToken, { email, key })
        issued.push(accessToken)
        return sendJson(response, 200, { access_token: accessToken, expires_in: 3599, token_type: 'Bearer' })
      } catch {
        return sendJson(response, 400, { error: 'invalid_grant' })
      }
    }
    if (url.pathname !== '/token') return sendJson(response, 404, {})
    let subject: string | undefined
    let scopes: string[]
    if (request.method === 'POST') {
      const form = new URLSearchParams(request.body.toString())
      scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '')
      if (form.get('grant_type') === 'refresh_token') {
        const who = refreshTokens.get(form.get('refresh_token') ?? '')
        subject = who && `refresh:${who}`
      } else if (form.get('grant_type') === 'password') {
        subject = basicSubject(form.get('username') ?? '', form.get('password') ?? '')
      }
    } else {
      scopes = url.searchParams.getAll('scope')
      const header = request.headers.authorization ?? ''
      if (header.startsWith('Basic ')) {
        const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8')
        const colon = decoded.indexOf(':')
        subject = basicSubject(decoded.slice(0, colon), decoded.slice(colon + 1))
      }
    }
    if (subject === undefined) return sendJson(response, 401, { details: 'invalid credentials' })
    grants.push(subject)
    const token = await registryToken(subject, scopes)
    // Both names, as Docker Hub does; a long life, so only a rotation explains a new request.
    return sendJson(response, 200, { token, access_token: token, expires_in: options.expiresIn ?? 300 })
  })

  return {
    url: stub.url,
    realm: `${stub.url}/token`,
    tokenUri: `${stub.url}/oauth2/token`,
    service,
    issuer,
    rootCertBundle: certPath,
    rotateKey(email) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
      accounts.set(email, publicKey)
      const keyJson = JSON.stringify(
        {
          type: 'service_account',
          project_id: 'ferry-test',
          private_key_id: randomBytes(20).toString('hex'),
          private_key: privateKeyPem,
          client_email: email,
          client_id: '1234567890',
          auth_uri: 'https://accounts.google.com/o/oauth2/auth',
          token_uri: `${stub.url}/oauth2/token`,
        },
        null,
        2,
      )
      return { email, keyJson, privateKeyPem }
    },
    addUser: (username, password) => void users.set(username, password),
    addRefreshToken: (token, subject) => void refreshTokens.set(token, subject),
    denyAccess: (subject) => void denied.add(subject),
    grants,
    issued,
    requests: stub.requests,
    async close() {
      await stub.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}
