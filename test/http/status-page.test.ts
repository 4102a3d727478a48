// The status page (/ui/) against a real Ferry mirroring a real distribution upstream: the JSON it
// reads agrees with what happened (a miss, then a hit, bytes fetched once), it wants a login when
// accounts exist and lists only repositories the account may pull, and a real headless Chromium
// renders upstreams, repositories, tags and the pull command from it.
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { basic } from '../helpers/htpasswd.js'
import { asEditor, asViewer, editor, teamAuth, viewer } from '../helpers/team-accounts.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { seedImage, type SeededImage } from '../helpers/seed.js'
import { missingTools } from '../helpers/tools.js'
import type { StatusReport } from '../../src/observability/status-report.js'

const skip = distributionUnavailable()
const noBrowser = missingTools('chromium').length > 0 ? 'chromium is not installed' : undefined
const { users, roles } = await teamAuth()

interface Site {
  ferry: MirrorServer
  upstreamImage: SeededImage
}

async function site(t: Test, withAccounts: boolean): Promise<Site> {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const upstreamImage = await seedImage(upstream.url, 'distroless/static', 'v1')
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', upstream.url)], defaultUpstream: 'gcr.io' },
    withAccounts ? { auth: { users, roles } } : {},
  )
  t.teardown(() => ferry.close())
  return { ferry, upstreamImage }
}

interface Listing {
  repositories: string[]
  next?: string
}

async function json<T = unknown>(url: string, authorization?: string): Promise<{ status: number; body: T; headers: Headers }> {
  const response = await fetch(url, authorization === undefined ? {} : { headers: { authorization } })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: (text.startsWith('{') ? JSON.parse(text) : text) as T }
}

async function dumpDom(t: Test, url: string): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'ferry-chromium-'))
  t.teardown(() => rm(profile, { recursive: true, force: true }))
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    `--user-data-dir=${profile}`,
    '--virtual-time-budget=10000',
    '--dump-dom',
    url,
  ]
  const { stdout } = await promisify(execFile)('chromium', args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })
  return stdout
}

t.test('without accounts: the status JSON tells what the mirror did', { skip }, async (t) => {
  const { ferry, upstreamImage } = await site(t, false)
  const root = await fetch(`${ferry.url}/`, { redirect: 'manual' })
  t.equal(root.status, 302, '/ leads to the status page')
  t.equal(root.headers.get('location'), '/ui/')
  const page = await fetch(`${ferry.url}/ui/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  t.match(await page.text(), /<title>Ferry status<\/title>/)

  const before = await json<StatusReport>(`${ferry.url}/ui/api/status`)
  t.equal(before.status, 200)
  t.same(before.body.upstreams, [
    { name: 'gcr.io', url: before.body.upstreams[0]!.url, circuit: 'closed', requests: { ok: 0, notFound: 0, error: 0 }, receivedBytes: 0 },
  ])
  t.equal(before.body.cache.hitRatio, null, 'no ratio before the first pull')
  t.equal(before.body.storage.driver, process.env.FERRY_TEST_STORAGE === 's3' ? 's3' : 'filesystem')
  t.equal(before.body.tls, null, 'plain HTTP: no certificate')

  const layer = upstreamImage.layers[0]!
  for (let i = 0; i < 2; i++) {
    const blob = await fetch(`${ferry.url}/v2/distroless/static/blobs/${layer.digest}`)
    t.equal(Buffer.from(await blob.arrayBuffer()).length, layer.bytes.length, `pull ${i + 1} of the layer`)
  }
  const after = await json<StatusReport>(`${ferry.url}/ui/api/status`)
  t.equal(after.body.cache.misses, 1, 'the first pull went upstream')
  t.equal(after.body.cache.hits, 1, 'the second came from the cache')
  t.equal(after.body.cache.hitRatio, 0.5)
  t.equal(after.body.cache.upstreamBytesFetched, layer.bytes.length, 'the layer was fetched once')
  t.ok(after.body.upstreams[0]!.requests.ok >= 1, 'the upstream answered')
})

t.test('with accounts: a login, and only the repositories the account may pull', { skip }, async (t) => {
  const { ferry } = await site(t, true)
  for (const repo of ['team-a/app', 'team-a/tools', 'team-b/secret']) await seedImage(ferry.url, repo, 'v1', { auth: editor })

  for (const path of ['/ui/', '/ui/api/status', '/ui/api/repositories']) {
    const anonymous = await json(`${ferry.url}${path}`)
    t.equal(anonymous.status, 401, `${path}: anonymous is refused`)
    t.match(anonymous.headers.get('www-authenticate'), /^Basic realm="Ferry"/, 'with a challenge a browser answers')
    t.equal((await json(`${ferry.url}${path}`, basic(viewer.username, 'wrong'))).status, 401, `${path}: a wrong password too`)
  }
  t.same((await json<Listing>(`${ferry.url}/ui/api/repositories`, asViewer)).body, { repositories: ['team-a/app', 'team-a/tools'] })
  t.same((await json<Listing>(`${ferry.url}/ui/api/repositories`, asEditor)).body.repositories, [
    'team-a/app',
    'team-a/tools',
    'team-b/secret',
  ])
  const page = await json(`${ferry.url}/ui/api/repositories?n=1`, asViewer)
  t.same(page.body, { repositories: ['team-a/app'], next: 'team-a/app' }, 'a page at a time')
  t.same((await json<Listing>(`${ferry.url}/ui/api/repositories?n=1&last=team-a/app`, asViewer)).body.repositories, ['team-a/tools'])

  t.same((await json(`${ferry.url}/ui/api/tags?repository=team-a/app`, asViewer)).body, {
    name: 'team-a/app',
    tags: ['v1'],
    truncated: false,
  })
  const hidden = await json<{ errors: { code: string }[] }>(`${ferry.url}/ui/api/tags?repository=team-b/secret`, asViewer)
  t.equal(hidden.status, 404, 'another team’s repository is not there for the viewer')
  t.equal(hidden.body.errors[0]!.code, 'NAME_UNKNOWN')
  t.equal((await json(`${ferry.url}/ui/api/tags?repository=..%2Fetc`, asViewer)).status, 400, 'a bad name is refused')
})

t.test('a real browser renders the page', { skip: skip ?? noBrowser }, async (t) => {
  const { ferry, upstreamImage } = await site(t, true)
  await seedImage(ferry.url, 'team-a/app', 'v1.2.3', { auth: editor })
  await fetch(`${ferry.url}/v2/distroless/static/blobs/${upstreamImage.layers[0]!.digest}`).then((r) => r.arrayBuffer())
  const port = new URL(ferry.url).port
  const dom = await dumpDom(t, `http://${viewer.username}:${viewer.password}@127.0.0.1:${port}/ui/#repository=team-a%2Fapp`)
  t.match(dom, /<td>gcr\.io<\/td>/, 'the upstream')
  t.match(dom, /<td class="closed">closed<\/td>/, 'its circuit state')
  t.match(dom, /id="hit-ratio">0\.0 %</, 'the hit ratio after one miss')
  t.match(dom, /data-repository="team-a\/app"/, 'the repository list')
  t.match(dom, /<td>v1\.2\.3<\/td>/, 'the selected repository’s tag')
  t.match(dom, new RegExp(`crictl pull 127\\.0\\.0\\.1:${port}/team-a/app:v1\\.2\\.3`), 'the pull command to copy')
  t.notMatch(dom, /id="error">[^<]/, 'no error shown')
})
