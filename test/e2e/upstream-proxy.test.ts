// Ferry reaching a real HTTPS upstream (CNCF distribution, private CA) through a CONNECT proxy:
// HTTPS_PROXY from the environment of a real `ferry serve`, credentials sent as
// Proxy-Authorization and never logged, NO_PROXY and per-upstream overrides bypassing it.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { ProxyConfig, UpstreamConfig } from '../../src/config/schema.js'
import { startConnectProxy, type ConnectProxy } from '../helpers/connect-proxy.js'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { startFerryProcess } from '../helpers/ferry-process.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const skip = distributionUnavailable() ?? pkiUnavailable()
if (skip) t.plan(0, skip)

const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
const credentials = { username: 'proxy-user', password: 'Pr0xy-s3cret-9f2c' }
const token = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')

const work = await mkdtemp(join(tmpdir(), 'ferry-upstream-proxy-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const ca = await makeCa(join(work, 'ca'))
const serverCert = await issueServerCert(ca, { cn: '127.0.0.1' })

// One HTTPS upstream for every test, seeded over HTTP first; each test pulls its own tag.
const tags = ['env', 'no-proxy', 'direct', 'explicit', 'refused']
let upstream: Distribution = await startDistribution()
const images = new Map<string, SeededImage>()
for (const tag of tags) images.set(tag, await seedImage(upstream.url, 'team/app', tag, { layers: [randomBytes(40_000)] }))
upstream = await upstream.restart({ certificate: serverCert.fullChainPath, key: serverCert.keyPath })
t.teardown(() => upstream.stop())

async function proxy(t: Test, withCredentials = true): Promise<ConnectProxy> {
  const started = await startConnectProxy(withCredentials ? { credentials } : {})
  t.teardown(() => started.close())
  return started
}

function withCredentialsIn(proxyUrl: string, user = credentials.username, password = credentials.password): string {
  const url = new URL(proxyUrl)
  url.username = user
  url.password = password
  return url.toString()
}

async function mirror(t: Test, upstreamOverrides: Partial<UpstreamConfig>, proxyDefaults?: ProxyConfig): Promise<MirrorServer> {
  const ferry = await startMirrorServer({
    upstreams: [
      upstreamConfig('private.example', upstream.url, {
        tls: { caPath: ca.certPath, certPath: undefined, keyPath: undefined, insecureSkipVerify: false },
        ...upstreamOverrides,
      }),
    ],
    defaultUpstream: 'private.example',
    ...(proxyDefaults ? { proxy: proxyDefaults } : {}),
  })
  t.teardown(() => ferry.close())
  return ferry
}

async function pull(t: Test, ferryUrl: string, tag: string): Promise<void> {
  const image = images.get(tag)!
  const manifest = await fetch(`${ferryUrl}/v2/team/app/manifests/${tag}`, { headers: { accept } })
  t.equal(manifest.status, 200, `manifest ${tag} pulled`)
  t.same(Buffer.from(await manifest.arrayBuffer()), image.manifest.bytes, 'manifest byte-exact')
  for (const blob of [image.config, ...image.layers]) {
    const response = await fetch(`${ferryUrl}/v2/team/app/blobs/${blob.digest}`)
    t.equal(sha256(Buffer.from(await response.arrayBuffer())), blob.digest, 'blob bytes match their digest')
  }
}

t.test('HTTPS_PROXY from the environment of `ferry serve`: tunnels with Proxy-Authorization, credentials never logged', async (t) => {
  const tunnel = await proxy(t)
  const dir = await mkdtemp(join(work, 'serve-'))
  const file = join(dir, 'ferry.yaml')
  await writeFile(
    file,
    [
      'mirror:',
      '  upstreams:',
      '    - name: private.example',
      `      url: ${upstream.url}`,
      '      tls:',
      `        caPath: ${ca.certPath}`,
      '',
    ].join('\n'),
  )
  const ferry = await startFerryProcess(
    ['serve', '--config', file, '--listen', '127.0.0.1:0', '--storage', join(dir, 'data'), '--log-level', 'debug'],
    {
      env: { HTTPS_PROXY: withCredentialsIn(tunnel.url), NO_PROXY: '', no_proxy: '', HTTP_PROXY: '', http_proxy: '' },
    },
  )
  t.teardown(() => ferry.stop())
  await pull(t, ferry.url, 'env')

  const tunnels = tunnel.tunnels()
  t.ok(tunnels.length >= 1, 'the pull went through the proxy')
  t.ok(
    tunnels.every((x) => x.target === upstream.host),
    `every tunnel goes to the upstream ${upstream.host}`,
  )
  t.ok(
    tunnels.every((x) => x.proxyAuthorization === `Basic ${token}`),
    'with the URL credentials as Proxy-Authorization',
  )
  const logs = ferry.logs()
  t.match(logs, /"msg":"upstream transport"/, 'the transport is logged')
  t.match(logs, /proxy-user:\*\*\*@|\*\*\*@127\.0\.0\.1/, 'with the proxy credentials masked')
  t.notMatch(logs, credentials.password, 'the proxy password never appears in the logs')
  t.notMatch(logs, token, 'nor the Proxy-Authorization value')
})

t.test('NO_PROXY rules send matching upstreams direct', async (t) => {
  const tunnel = await proxy(t)
  const ferry = await mirror(
    t,
    {},
    { httpsProxy: withCredentialsIn(tunnel.url), httpProxy: undefined, noProxy: 'registry.corp.example, 127.0.0.0/8' },
  )
  await pull(t, ferry.url, 'no-proxy')
  t.same(tunnel.tunnels(), [], 'no tunnel: 127.0.0.1 is in NO_PROXY')
})

t.test('per-upstream proxy: "none" bypasses the default, a URL is used without one', async (t) => {
  const tunnel = await proxy(t)
  const direct = await mirror(
    t,
    { proxy: { kind: 'direct' } },
    { httpsProxy: withCredentialsIn(tunnel.url), httpProxy: undefined, noProxy: '' },
  )
  await pull(t, direct.url, 'direct')
  t.same(tunnel.tunnels(), [], 'proxy: none connects directly')
  const explicit = await mirror(t, { proxy: { kind: 'url', url: withCredentialsIn(tunnel.url) } })
  await pull(t, explicit.url, 'explicit')
  t.ok(tunnel.tunnels().length >= 1, 'an upstream proxy URL is used with no mirror.proxy at all')
  t.notOk(
    explicit.logs.some((l) => l.includes(credentials.password)),
    'password not logged',
  )
})

t.test('a proxy refusing our credentials is UNAVAILABLE naming the upstream', async (t) => {
  const tunnel = await proxy(t)
  const ferry = await mirror(t, { proxy: { kind: 'url', url: withCredentialsIn(tunnel.url, 'proxy-user', 'wrong-Pa55') } })
  const response = await fetch(`${ferry.url}/v2/team/app/manifests/refused`, { headers: { accept } })
  t.equal(response.status, 503)
  const body = (await response.json()) as { errors: Array<{ code: string; message: string }> }
  t.equal(body.errors[0]?.code, 'UNAVAILABLE')
  t.match(body.errors[0]?.message, /upstream private\.example/)
  t.ok(
    tunnel.tunnels().some((x) => !x.allowed),
    'the proxy said 407',
  )
  t.notOk(
    [...ferry.logs, JSON.stringify(body)].some((l) => l.includes('wrong-Pa55')),
    'the password is in no log line nor the error body',
  )
})
