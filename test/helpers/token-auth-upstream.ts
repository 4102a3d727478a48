// An upstream that wants our credentials: CNCF distribution with `auth: token` trusting an
// in-test token server, plus a second distribution on the same storage without auth, through
// which tests seed images. Stopped and removed at the end of the test.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startDistribution, type Distribution } from './distribution.js'
import { startTokenServer, type TokenServer, type TokenServerOptions } from './token-server.js'

export interface TokenAuthUpstream {
  tokens: TokenServer
  /** Token-auth distribution: what Ferry mirrors. */
  registry: Distribution
  /** The same storage without auth: how tests seed images. */
  seeder: Distribution
  dir: string
}

export async function startTokenAuthUpstream(t: Test, tokenOptions: TokenServerOptions = {}): Promise<TokenAuthUpstream> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-token-upstream-'))
  const tokens = await startTokenServer(tokenOptions)
  const storage = { storage: { filesystem: { rootdirectory: join(dir, 'registry') }, delete: { enabled: true } } }
  const seeder = await startDistribution({ config: storage })
  const registry = await startDistribution({
    auth: 'token',
    token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle },
    config: storage,
  })
  t.teardown(async () => {
    await Promise.all([registry.stop(), seeder.stop(), tokens.close()])
    await rm(dir, { recursive: true, force: true })
  })
  return { tokens, registry, seeder, dir }
}
