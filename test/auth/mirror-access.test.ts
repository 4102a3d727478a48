// Anonymous pull tells pushed content from mirrored content: a real distribution upstream, Ferry
// in front of it with one account. By default what the mirror fetches from an upstream is open
// (containerd nodes have no credentials) and what was pushed here is private; both are
// configurable, and a token for other repositories never closes an open mirror pull.
import t, { type Test } from 'tap'
import type { AuthConfig } from '../../src/config/schema.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { basic, htpasswdLine } from '../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { seedImage, type SeededImage } from '../helpers/seed.js'

const skip = distributionUnavailable()
const editor = { username: 'ed', password: 'ed-pw' }
const editorHash = (await htpasswdLine(editor.username, editor.password)).split(':')[1]!

interface Site {
  ferry: MirrorServer
  /** On the upstream only: reached through the mirror. */
  upstreamImage: SeededImage
  /** Pushed into Ferry under test-namespace/pushed. */
  pushedImage: SeededImage
}

async function site(t: Test, auth: Partial<AuthConfig> = {}): Promise<Site> {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const upstreamImage = await seedImage(upstream.url, 'distroless/static', 'v1')
  const ferry = await startMirrorServer(
    {
      upstreams: [upstreamConfig('gcr.io', upstream.url)],
      defaultUpstream: 'gcr.io',
      namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
    },
    { auth: { users: [{ name: editor.username, password: editorHash, groups: [] }], ...auth } },
  )
  t.teardown(() => ferry.close())
  const pushedImage = await seedImage(ferry.url, 'test-namespace/pushed', 'v1', { auth: editor })
  return { ferry, upstreamImage, pushedImage }
}

async function status(url: string, image: SeededImage, authorization?: string): Promise<number> {
  const headers: Record<string, string> = { accept: image.manifest.mediaType }
  if (authorization !== undefined) headers.authorization = authorization
  const response = await fetch(url, { headers })
  await response.arrayBuffer()
  return response.status
}

t.test('defaults: mirrored content is open, pushed content needs a login', { skip }, async (t) => {
  const { ferry, upstreamImage, pushedImage } = await site(t)
  t.equal(await status(`${ferry.url}/v2/distroless/static/manifests/v1`, upstreamImage), 200, 'default upstream route')
  t.equal(await status(`${ferry.url}/v2/distroless/static/manifests/v1?ns=gcr.io`, upstreamImage), 200, "containerd's ?ns=")
  t.equal(
    await status(`${ferry.url}/v2/test-namespace/distroless/static/manifests/v1`, upstreamImage),
    200,
    'a namespace path falling back upstream',
  )
  t.equal(await status(`${ferry.url}/v2/distroless/static/blobs/${upstreamImage.layers[0]!.digest}`, upstreamImage), 200, 'its blobs')

  const pushed = await fetch(`${ferry.url}/v2/test-namespace/pushed/manifests/v1`, { headers: { accept: pushedImage.manifest.mediaType } })
  t.equal(pushed.status, 401, 'pushed content: 401 for anonymous')
  t.match(pushed.headers.get('www-authenticate'), /scope="repository:test-namespace\/pushed:pull"/, 'with a challenge for the repository')
  t.equal(await status(`${ferry.url}/v2/test-namespace/pushed/blobs/${pushedImage.layers[0]!.digest}`, pushedImage), 401, 'its blobs too')
  t.equal(
    await status(`${ferry.url}/v2/test-namespace/pushed/manifests/v1`, pushedImage, basic(editor.username, editor.password)),
    200,
    'with an account: 200',
  )
})

t.test('a token for other repositories does not close an open mirror pull', { skip }, async (t) => {
  const { ferry, upstreamImage } = await site(t)
  const token = (await (
    await fetch(`${ferry.url}/token?service=ferry&scope=repository:test-namespace/pushed:pull`, {
      headers: { authorization: basic(editor.username, editor.password) },
    })
  ).json()) as { token: string }
  t.equal(await status(`${ferry.url}/v2/distroless/static/manifests/v1`, upstreamImage, `Bearer ${token.token}`), 200)
})

t.test('configured: pushed namespaces opened, the mirror closed', { skip }, async (t) => {
  const { ferry, upstreamImage, pushedImage } = await site(t, { anonymousPull: ['test-namespace/**'], anonymousMirrorPull: [] })
  t.equal(
    await status(`${ferry.url}/v2/test-namespace/pushed/manifests/v1`, pushedImage),
    200,
    'anonymousPull opens pushed test-namespace/**',
  )
  t.equal(await status(`${ferry.url}/v2/distroless/static/manifests/v1`, upstreamImage), 401, 'anonymousMirrorPull [] closes the mirror')
  t.equal(
    await status(`${ferry.url}/v2/distroless/static/manifests/v1`, upstreamImage, basic(editor.username, editor.password)),
    200,
    'an account still pulls it',
  )
})

t.test('anonymousMirrorPull patterns match the upstream-qualified name, however it was asked for', { skip }, async (t) => {
  const { ferry, upstreamImage } = await site(t, { anonymousMirrorPull: ['gcr.io/distroless/**'] })
  t.equal(await status(`${ferry.url}/v2/distroless/static/manifests/v1`, upstreamImage), 200, 'default route: gcr.io/distroless/static')
  t.equal(
    await status(`${ferry.url}/v2/test-namespace/distroless/static/manifests/v1`, upstreamImage),
    200,
    'namespace path: gcr.io/distroless/static',
  )
  t.equal(
    await status(`${ferry.url}/v2/gcr.io/distroless/static/manifests/v1`, upstreamImage),
    200,
    'upstream prefix: gcr.io/distroless/static',
  )
  t.equal(await status(`${ferry.url}/v2/other/static/manifests/v1`, upstreamImage), 401, 'gcr.io/other/static is not covered')
})
