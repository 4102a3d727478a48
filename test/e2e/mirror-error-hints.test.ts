// Errors from the mirror point at the fix. Against real distribution upstreams: an upstream that
// wants a login while none is configured names the settings that provide one (in the answer and
// in the log); a stale answer after the upstream refused our credentials says that, not
// "unavailable"; a 404 for a name routed with ?ns= shows the name actually asked upstream.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { pkiUnavailable } from '../helpers/pki.js'
import { seedImage } from '../helpers/seed.js'
import { startTokenAuthUpstream } from '../helpers/token-auth-upstream.js'

const skip = distributionUnavailable() ?? pkiUnavailable()
if (skip) t.plan(0, skip)

const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*'

interface ErrorBody {
  errors: { code: string; message: string; detail?: string }[]
}

t.test('an upstream that wants a login, with no credentials configured: the answer and the log name the settings', async (t) => {
  const up = await startTokenAuthUpstream(t)
  await seedImage(up.seeder.url, 'team/app', 'v1')
  const server = await startMirrorServer({ upstreams: [upstreamConfig('private.test', up.registry.url)] })
  t.teardown(() => server.close())
  const answer = await fetch(`${server.url}/v2/private.test/team/app/manifests/v1`, { headers: { accept } })
  const body = (await answer.json()) as ErrorBody
  t.equal(answer.status, 403)
  const error = body.errors[0]
  t.match(error?.message, /upstream private\.test denied access/)
  t.match(error?.detail, /no credentials are configured for upstream private\.test/, 'says that none were sent')
  t.match(error?.detail, /gcrKeyPath/, 'names the settings')
  t.match(error?.detail, /pullCredentialConfigPath/)
  const line = server.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'upstream denied access')
  t.match(line, { level: 40, upstream: 'private.test', repo: 'team/app', hint: /pullCredentialConfigPath/ }, 'a warning says so too')
})

t.test('stale answers after the upstream refused our credentials name that cause', async (t) => {
  const up = await startTokenAuthUpstream(t, { expiresIn: 1 })
  await seedImage(up.seeder.url, 'team/app', 'v1')
  up.tokens.addUser('puller', 'puller-pw')
  const configPath = join(up.dir, 'config.json')
  await writeFile(configPath, JSON.stringify({ auths: { 'refusing.test': { username: 'puller', password: 'puller-pw' } } }))
  const server = await startMirrorServer({
    upstreams: [upstreamConfig('refusing.test', up.registry.url, { tagTtl: 0 })],
    pullCredentialConfigPath: configPath,
  })
  t.teardown(() => server.close())
  const url = `${server.url}/v2/refusing.test/team/app/manifests/v1`
  t.equal(await fetch(url, { headers: { accept } }).then((r) => r.status), 200)

  up.tokens.denyAccess('user:puller') // tokens come back without access: the registry says 401
  let warning: string | null = null
  for (let i = 0; i < 600 && warning === null; i++) {
    const answer = await fetch(url, { headers: { accept } })
    await answer.arrayBuffer()
    if (answer.status !== 200) {
      t.fail(`cached content is served, got ${answer.status}`)
      break
    }
    warning = answer.headers.get('warning')
    if (warning === null) await sleep(50)
  }
  t.match(warning, /^299 - "served from cache: upstream refusing\.test denied access/, 'the real cause')
  t.notMatch(warning, /unavailable/, 'not "unavailable": the upstream answered')
})

t.test('a 404 for a name routed with ?ns= names the repository asked upstream', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const server = await startMirrorServer({ upstreams: [upstreamConfig('docker.io', upstream.url)] })
  t.teardown(() => server.close())
  const answer = await fetch(`${server.url}/v2/pause/manifests/3.9?ns=docker.io`, { headers: { accept } })
  t.equal(answer.status, 404)
  const error = ((await answer.json()) as ErrorBody).errors[0]
  t.equal(error?.code, 'MANIFEST_UNKNOWN')
  t.match(error?.detail, /upstream=docker\.io/, 'names the upstream')
  t.match(error?.detail, /upstreamRepository=library\/pause/, 'and the name asked there, library/ added')
  t.match(error?.detail, /tag=3\.9/)

  const byDigest = await fetch(`${server.url}/v2/pause/manifests/sha256:${'0'.repeat(64)}?ns=docker.io`, { headers: { accept } })
  t.equal(byDigest.status, 404)
  t.match(((await byDigest.json()) as ErrorBody).errors[0]?.detail, /upstreamRepository=library\/pause/, 'by digest too')
})
