// A site keeps pulling what it has cached when its upstream credentials break. Against a real
// token-auth distribution: a registry that refuses our token (403 DENIED upstream) and a token
// endpoint that refuses a revoked key (UNAVAILABLE) both leave cached tags, tag lists, manifests
// and blobs served (stale, and saying so), while uncached content gets the refusal naming the
// upstream. Refusals do not open the circuit: a repaired key works on the very next request.
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { UpstreamConfig } from '../../src/config/schema.js'
import { distributionUnavailable } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { pkiUnavailable } from '../helpers/pki.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'
import { startTokenAuthUpstream } from '../helpers/token-auth-upstream.js'
import type { TokenServer } from '../helpers/token-server.js'

const skip = distributionUnavailable() ?? pkiUnavailable()
if (skip) t.plan(0, skip)

// What containerd sends: an answer to it is the tag's canonical manifest, which Ferry caches.
const accept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  '*/*',
].join(', ')

interface Setup {
  tokens: TokenServer
  registryUrl: string
  /** Same storage, no auth: seeds images. */
  seederUrl: string
  dir: string
}

async function setup(t: Test): Promise<Setup> {
  // Tokens expire at once for Ferry's cache, so each revalidation asks the token server again.
  const { tokens, registry, seeder, dir } = await startTokenAuthUpstream(t, { expiresIn: 1 })
  return { tokens, registryUrl: registry.url, seederUrl: seeder.url, dir }
}

async function mirror(t: Test, upstream: UpstreamConfig, pullCredentialConfigPath?: string): Promise<MirrorServer> {
  const server = await startMirrorServer({ upstreams: [upstream], ...(pullCredentialConfigPath ? { pullCredentialConfigPath } : {}) })
  t.teardown(() => server.close())
  return server
}

interface Answer {
  status: number
  digest: string
  stale: boolean
  warning: string | null
  body: Buffer
}

async function get(url: string, headers: Record<string, string> = { accept }): Promise<Answer> {
  const response = await fetch(url, { headers })
  const body = Buffer.from(await response.arrayBuffer())
  return {
    status: response.status,
    digest: sha256(body),
    stale: response.headers.get('x-ferry-cache') === 'stale',
    warning: response.headers.get('warning'),
    body,
  }
}

/** Asks for the tag until an answer says it is stale (revalidation runs behind the first ask). */
async function untilStale(url: string): Promise<Answer[]> {
  const answers: Answer[] = []
  for (let i = 0; i < 600; i++) {
    const answer = await get(url)
    answers.push(answer)
    if (answer.stale) return answers
    await sleep(50)
  }
  throw new Error(`never served stale: ${url}; last answer ${answers.at(-1)?.status}: ${answers.at(-1)?.body.toString().slice(0, 300)}`)
}

async function pullBlobs(server: MirrorServer, path: string, image: SeededImage): Promise<boolean> {
  for (const blob of [image.config, ...image.layers]) {
    const answer = await get(`${server.url}/v2/${path}/blobs/${blob.digest}`, {})
    if (answer.status !== 200 || answer.digest !== blob.digest) return false
  }
  return true
}

t.test('the registry refuses our token (DENIED): cached content is served stale, uncached gets DENIED naming the upstream', async (t) => {
  const up = await setup(t)
  const image = await seedImage(up.seederUrl, 'team/app', 'v1')
  await seedImage(up.seederUrl, 'team/other', 'v1')
  up.tokens.addUser('puller', 'puller-pw')
  const configPath = join(up.dir, 'config.json')
  await writeFile(configPath, JSON.stringify({ auths: { 'refusing.test': { username: 'puller', password: 'puller-pw' } } }))
  const server = await mirror(t, upstreamConfig('refusing.test', up.registryUrl, { tagTtl: 0 }), configPath)
  const tagUrl = `${server.url}/v2/refusing.test/team/app/manifests/v1`

  const fresh = await get(tagUrl)
  t.equal(fresh.digest, image.manifest.digest, 'pulled while our credentials are good')
  t.ok(await pullBlobs(server, 'refusing.test/team/app', image))
  t.equal((await get(`${server.url}/v2/refusing.test/team/app/tags/list`, {})).status, 200)

  // The account loses its rights: tokens come back without access, the registry says 401.
  up.tokens.denyAccess('user:puller')
  const answers = await untilStale(tagUrl)
  t.same(
    answers.filter((a) => a.status !== 200 || a.digest !== image.manifest.digest),
    [],
    'every answer is the cached manifest',
  )
  const stale = answers.at(-1)!
  t.match(stale.warning, /^299 - ".*upstream refusing\.test/, 'the stale notice names the upstream')

  const tags = await get(`${server.url}/v2/refusing.test/team/app/tags/list`, {})
  t.equal(tags.status, 200, 'the tag list comes from the cache')
  t.ok(tags.stale)
  t.same(JSON.parse(tags.body.toString()).tags, ['v1'])
  t.ok(await pullBlobs(server, 'refusing.test/team/app', image), 'cached blobs are served')

  const uncached = await fetch(`${server.url}/v2/refusing.test/team/other/manifests/v1`, { headers: { accept } })
  t.equal(uncached.status, 403)
  t.equal(uncached.headers.get('www-authenticate'), null)
  t.match(await uncached.json(), { errors: [{ code: 'DENIED', message: /upstream refusing\.test denied access/ }] })
})

t.test('the token endpoint refuses a revoked key: cached content is served stale, refusals do not open the circuit', async (t) => {
  const up = await setup(t)
  const image = await seedImage(up.seederUrl, 'team/app', 'v1')
  const others = await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => seedImage(up.seederUrl, `team/other${i}`, 'v1')))
  const email = 'puller@ferry-test.iam.gserviceaccount.com'
  const keyPath = join(up.dir, 'key.json')
  await writeFile(keyPath, up.tokens.rotateKey(email).keyJson)
  // Default breaker: 5 failures open it for 30 s.
  const server = await mirror(t, upstreamConfig('revoked.test', up.registryUrl, { gcrKeyPath: keyPath, tagTtl: 0 }))
  const tagUrl = `${server.url}/v2/revoked.test/team/app/manifests/v1`
  t.equal((await get(tagUrl)).digest, image.manifest.digest)
  t.ok(await pullBlobs(server, 'revoked.test/team/app', image))

  const replacement = up.tokens.rotateKey(email) // the key Ferry holds is revoked
  const answers = await untilStale(tagUrl)
  t.same(
    answers.filter((a) => a.status !== 200 || a.digest !== image.manifest.digest),
    [],
    'every answer is the cached manifest',
  )
  t.ok(await pullBlobs(server, 'revoked.test/team/app', image))

  // More refusals than breaker.failures: each still says why, none says "circuit open".
  for (let i = 1; i <= 7; i++) {
    const refused = await fetch(`${server.url}/v2/revoked.test/team/other${i}/manifests/v1`, { headers: { accept } })
    t.equal(refused.status, 503)
    t.match(
      await refused.json(),
      { errors: [{ code: 'UNAVAILABLE', message: /upstream revoked\.test refused our credentials/ }] },
      `refusal ${i} names the cause`,
    )
  }
  const breaker = (await server.composed.metrics.breakerState.get()).values.find((v) => v.labels.upstream === 'revoked.test')
  t.equal(breaker?.value, 0, 'the circuit stays closed')

  // The operator installs the new key: the very next uncached pull works, no cooldown to sit out.
  await writeFile(`${keyPath}.new`, replacement.keyJson)
  await rename(`${keyPath}.new`, keyPath)
  await server.composed.reloadCredentials()
  const repaired = await get(`${server.url}/v2/revoked.test/team/other1/manifests/v1`)
  t.equal(repaired.status, 200)
  t.equal(repaired.digest, others[0]!.manifest.digest)
})
