// Where upstream credentials come from. The client asks per request rather than once at start
// so a provider may rotate them (e.g. exchange a service-account key for a short-lived token).

export interface Credentials {
  username: string
  password: string
}

export interface CredentialProvider {
  /** Credentials for a registry host (`gcr.io`, `127.0.0.1:5001`); undefined means anonymous. */
  credentials(host: string): Promise<Credentials | undefined>
}

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
