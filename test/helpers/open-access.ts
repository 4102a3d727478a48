// Allow-everything authentication for tests of the registry API itself (test/helpers/server.ts).
// It lives here, not in src/: production composition (src/app/compose-app.ts) has no way to build an app
// without the real authenticator and authorizer.
import type { Authenticator, Authorizer } from '../../src/core/auth.js'

export const openAuthenticator: Authenticator = {
  authenticate: async () => ({ outcome: 'ok', principal: { name: '', groups: [], anonymous: true, via: 'none' } }),
  hasAccounts: () => false,
  challenge: { service: 'ferry-test' },
}

export const openAuthorizer: Authorizer = {
  authorize: () => 'allow',
}
