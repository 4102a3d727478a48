// Where upstream credentials come from. The client asks per request rather than once at start
// so a provider may rotate them (e.g. exchange a service-account key for a short-lived token).

export interface Credentials {
  username: string
  password: string
}

export interface CredentialProvider {
  /**
   * Credentials for a registry host (`gcr.io`, `127.0.0.1:5001`); undefined means anonymous.
   * Rejects when the credentials exist but cannot be had right now (an OAuth2 exchange failed):
   * the message names what failed, never a secret.
   */
  credentials(host: string): Promise<Credentials | undefined>
  /**
   * Changes whenever the underlying material was replaced (a rotated key file): registry tokens
   * minted with older credentials are then dropped. Absent for credentials that never change.
   */
  generation?(): number
}

/**
 * POSTs an application/x-www-form-urlencoded body (an OAuth2 token request) and returns the
 * parsed JSON of a 200 answer. Rejects with a ClientError (kind `auth` for a 4xx, `unavailable`
 * for other statuses) whose message names the URL's host and path only. Credential providers are
 * handed one by the composition root: network access lives in client/.
 */
export type FormPost = (url: string, form: Record<string, string>, signal?: AbortSignal) => Promise<Record<string, unknown>>

/**
 * Docker's convention for an identity (refresh) token: username `<token>` and the token as the
 * password. Such credentials go to the token endpoint as an OAuth2 refresh_token grant.
 */
export const identityTokenUsername = '<token>'

/** A provider over a fixed host → credentials table. */
export function staticCredentials(byHost: Readonly<Record<string, Credentials>>): CredentialProvider {
  const table = new Map(Object.entries(byHost))
  return { credentials: async (host) => table.get(host) }
}

export function basicAuthorization({ username, password }: Credentials): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`
}
