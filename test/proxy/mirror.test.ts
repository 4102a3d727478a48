// The pull-through mirror against a real upstream (CNCF distribution on loopback).
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startDistribution, distributionUnavailable, type Distribution } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { pushBlob, pushManifest, seedImage, sha256 } from '../helpers/seed.js'
import { missingTools, run } from '../helpers/tools.js'
import { eventually } from '../helpers/eventually.js'
import { basic, htpasswdLine } from '../helpers/htpasswd.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const accept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  '*/*',
].join(', ')

// Pulls are anonymous (mirrored content is open by default; pushed content is opened below so
// shadowing can be checked anonymously); seeding the mirror takes an account.
const seeder = { username: 'seeder', password: 'seeder-pw' }
const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!

async function setup(t: Test, upstreamOverrides = {}, now?: () => number): Promise<{ upstream: Distribution; ferry: MirrorServer }> {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer(
    {
      upstreams: [upstreamConfig('gcr.io', upstream.url, upstreamOverrides), upstreamConfig('docker.io', upstream.url)],
      defaultUpstream: 'gcr.io',
      namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
    },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
        anonymousPull: ['**'],
      },
      ...(now ? { now } : {}),
    },
  )
  t.teardown(() => ferry.close())
  return { upstream, ferry }
}

function blobGets(upstream: Distribution, digest: string): number {
  return upstream.requests().filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${digest}`)).length
}

t.test('pulls an image through the default route, then serves it with the upstream gone', async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'kubernetes-e2e-test-images/nautilus', '1.0', {
    layers: [randomBytes(300_000), randomBytes(1000)],
  })

  const head = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/manifests/1.0?ns=gcr.io`, {
    method: 'HEAD',
    headers: { accept },
  })
  t.equal(head.status, 200)
  t.equal(head.headers.get('docker-content-digest'), image.manifest.digest)
  t.equal(head.headers.get('content-type'), image.manifest.mediaType)
  t.equal(head.headers.get('content-length'), String(image.manifest.size))
  t.equal(head.headers.get('oci-namespace'), 'gcr.io')

  const manifest = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/manifests/${image.manifest.digest}`, {
    headers: { accept },
  })
  t.same(Buffer.from(await manifest.arrayBuffer()), image.manifest.bytes, 'manifest byte-exact')
  for (const blob of [image.config, ...image.layers]) {
    const res = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/blobs/${blob.digest}`)
    t.equal(res.status, 200)
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest, 'blob bytes match their digest')
  }

  await upstream.stop()
  const again = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/manifests/1.0`, { headers: { accept } })
  t.equal(again.status, 200, 'tag still served inside its TTL')
  const byDigest = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/manifests/${image.manifest.digest}`)
  t.equal(byDigest.status, 200, 'by-digest pull never needs the upstream once cached')
  const layer = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/nautilus/blobs/${image.layers[0]!.digest}`)
  t.equal(sha256(Buffer.from(await layer.arrayBuffer())), image.layers[0]!.digest)
  const missing = await fetch(`${ferry.url}/v2/kubernetes-e2e-test-images/other/manifests/1.0`)
  t.equal(missing.status, 503, 'a miss that cannot be served is UNAVAILABLE')
  t.equal(((await missing.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'UNAVAILABLE')
})

t.test('a retag upstream is seen after the TTL; stale tags are served while the upstream is down', async (t) => {
  // The mirror's clock is the test's: the TTL passes when the test says so, however slow the machine.
  let clock = Date.now()
  const ttl = 60_000
  const { upstream, ferry } = await setup(t, { tagTtl: ttl }, () => clock)
  const first = await seedImage(upstream.url, 'app', 'v1')
  const url = `${ferry.url}/v2/app/manifests/v1`
  const digestOf = async () => (await fetch(url, { method: 'HEAD', headers: { accept } })).headers.get('docker-content-digest')
  t.equal(await digestOf(), first.manifest.digest)

  const second = await seedImage(upstream.url, 'app', 'v1')
  t.equal(await digestOf(), first.manifest.digest, 'inside the TTL the cached answer is used')
  clock += ttl + 1
  t.equal(await digestOf(), first.manifest.digest, 'after the TTL the stale answer is served while revalidating')
  // The revalidation runs in the background: poll for its result rather than guess its timing.
  await eventually(async () => (await digestOf()) === second.manifest.digest, { message: 'the revalidated answer' })
  t.pass('the revalidated answer follows')
  const heads = await eventually(() => {
    const seen = upstream.requests().filter((r) => r.path === '/v2/app/manifests/v1')
    return seen.some((r) => r.method === 'HEAD') && seen
  })
  t.pass('revalidation used HEAD')
  t.equal(heads.filter((r) => r.method === 'GET').length, 1, 'only the first miss was a GET')

  await upstream.stop()
  clock += ttl + 1
  await fetch(url, { method: 'HEAD', headers: { accept } }) // triggers a failing revalidation
  const stale = await eventually(async () => {
    const res = await fetch(url, { headers: { accept } })
    if (res.headers.get('x-ferry-cache') === 'stale') return res
    await res.body?.cancel()
    return undefined
  })
  t.equal(stale.status, 200, 'the tag is served however stale')
  t.equal(stale.headers.get('docker-content-digest'), second.manifest.digest)
  t.equal(stale.headers.get('x-ferry-cache'), 'stale')
  t.match(stale.headers.get('warning') ?? '', /^299 - "served from cache: upstream gcr\.io is unreachable"$/)
  const metrics = await (await fetch(`${ferry.url}/metrics`)).text()
  t.match(metrics, /ferry_mirror_stale_serves_total\{kind="tag"\} [1-9]/)
  t.ok(
    ferry.logs.some((line) => line.includes('"msg":"served stale"')),
    'and a log line',
  )
})

t.test('20 concurrent clients on one uncached blob: one upstream fetch, everyone gets the right bytes', async (t) => {
  const { upstream, ferry } = await setup(t)
  const big = randomBytes(24 * 1024 * 1024)
  const image = await seedImage(upstream.url, 'big/image', 'v1', { layers: [big] })
  const digest = image.layers[0]!.digest
  const bodies = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const res = await fetch(`${ferry.url}/v2/big/image/blobs/${digest}?ns=gcr.io`)
      t.equal(res.status, 200)
      t.equal(res.headers.get('content-length'), String(big.length))
      return sha256(Buffer.from(await res.arrayBuffer()))
    }),
  )
  t.same(new Set(bodies), new Set([digest]), 'every client got the right bytes')
  t.equal(blobGets(upstream, digest), 1, 'the upstream served the blob once')
  const metrics = await (await fetch(`${ferry.url}/metrics`)).text()
  t.match(metrics, /ferry_mirror_coalesced_waiters_total\{kind="blob"\} 19/)
})

t.test('HEAD on an uncached blob asks the upstream HEAD and downloads nothing; ranges work before caching', async (t) => {
  const { upstream, ferry } = await setup(t)
  const layer = randomBytes(2 * 1024 * 1024)
  const image = await seedImage(upstream.url, 'ranged', 'v1', { layers: [layer] })
  const digest = image.layers[0]!.digest
  const head = await fetch(`${ferry.url}/v2/ranged/blobs/${digest}`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers.get('content-length'), String(layer.length))
  t.equal(blobGets(upstream, digest), 0, 'no GET for a HEAD')

  const ranged = await fetch(`${ferry.url}/v2/ranged/blobs/${digest}`, { headers: { range: 'bytes=1000000-1000099' } })
  t.equal(ranged.status, 206)
  t.equal(ranged.headers.get('content-range'), `bytes 1000000-1000099/${layer.length}`)
  t.same(Buffer.from(await ranged.arrayBuffer()), layer.subarray(1_000_000, 1_000_100))
  const tail = await fetch(`${ferry.url}/v2/ranged/blobs/${digest}`, { headers: { range: `bytes=${layer.length}-` } })
  t.equal(tail.status, 416)
})

t.test('a client that disconnects mid-fill does not break the cache', async (t) => {
  const { upstream, ferry } = await setup(t)
  const big = randomBytes(16 * 1024 * 1024)
  const image = await seedImage(upstream.url, 'quitter', 'v1', { layers: [big] })
  const digest = image.layers[0]!.digest
  const controller = new AbortController()
  const res = await fetch(`${ferry.url}/v2/quitter/blobs/${digest}`, { signal: controller.signal })
  const reader = res.body!.getReader()
  await reader.read()
  controller.abort()
  await reader.closed.catch(() => {})
  // The fill carries on: once it is committed the upstream is no longer needed.
  await eventually(async () => /ferry_mirror_blob_fills_in_flight 0/.test(await (await fetch(`${ferry.url}/metrics`)).text()), {
    message: 'the fill committed',
  })
  await upstream.stop()
  const again = await fetch(`${ferry.url}/v2/quitter/blobs/${digest}`)
  t.equal(again.status, 200)
  t.equal(sha256(Buffer.from(await again.arrayBuffer())), digest)
})

t.test('namespaced mirror paths in both shapes, local content shadowing the upstream', async (t) => {
  const { upstream, ferry } = await setup(t)
  const upstreamImage = await seedImage(upstream.url, 'pause', '3.9')
  for (const path of ['/v2/test-namespace/pause/manifests/3.9', '/v2/test-namespace/v2/pause/manifests/3.9?ns=gcr.io']) {
    const res = await fetch(`${ferry.url}${path}`, { headers: { accept } })
    t.equal(res.status, 200, path)
    t.equal(res.headers.get('docker-content-digest'), upstreamImage.manifest.digest, path)
  }
  // Seed the namespace locally: the pushed image now shadows the upstream's.
  const config = Buffer.from('{"local":true}')
  await pushBlob(ferry.url, 'test-namespace/pause', config, seeder)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [],
    }),
  )
  await pushManifest(ferry.url, 'test-namespace/pause', '3.9', manifest, 'application/vnd.oci.image.manifest.v1+json', seeder)
  for (const path of ['/v2/test-namespace/pause/manifests/3.9', '/v2/test-namespace/v2/pause/manifests/3.9']) {
    const res = await fetch(`${ferry.url}${path}`, { headers: { accept } })
    t.equal(res.headers.get('docker-content-digest'), sha256(manifest), `${path} serves the pushed image`)
  }
  const viaDefault = await fetch(`${ferry.url}/v2/pause/manifests/3.9`, { headers: { accept } })
  t.equal(viaDefault.headers.get('docker-content-digest'), upstreamImage.manifest.digest, 'other routes still mirror the upstream')
})

t.test('ns is a key into configured upstreams, never a host to dial', async (t) => {
  const { upstream, ferry } = await setup(t)
  const before = upstream.requests().length
  const res = await fetch(`${ferry.url}/v2/library/nginx/manifests/latest?ns=evil.example.com`, { headers: { accept } })
  t.equal(res.status, 404)
  t.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN')
  t.equal(upstream.requests().length, before, 'nothing was asked upstream')

  const hub = await seedImage(upstream.url, 'library/nginx', 'latest')
  const viaNs = await fetch(`${ferry.url}/v2/nginx/manifests/latest?ns=docker.io`, { headers: { accept } })
  t.equal(viaNs.headers.get('docker-content-digest'), hub.manifest.digest, 'Docker Hub library/ normalisation')
  const viaPrefix = await fetch(`${ferry.url}/v2/docker.io/library/nginx/manifests/latest`, { headers: { accept } })
  t.equal(viaPrefix.headers.get('docker-content-digest'), hub.manifest.digest, 'path-prefix route')
})

t.test("OCI-Namespace echoes the canonical upstream name, never the client's ns", async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer({
    upstreams: [upstreamConfig('gcr.io', upstream.url, { aliases: ['mirror.gcr.io'] })],
    defaultUpstream: 'gcr.io',
  })
  t.teardown(() => ferry.close())
  const image = await seedImage(upstream.url, 'pause', '3.9')
  for (const ns of ['gcr.io', 'mirror.gcr.io', 'GCR.IO', `${new URL(upstream.url).host}`]) {
    const res = await fetch(`${ferry.url}/v2/pause/manifests/3.9?ns=${encodeURIComponent(ns)}`, { method: 'HEAD', headers: { accept } })
    t.equal(res.status, 200, `ns=${ns}`)
    t.equal(res.headers.get('docker-content-digest'), image.manifest.digest, `ns=${ns}`)
    t.equal(res.headers.get('oci-namespace'), 'gcr.io', `ns=${ns} echoes the upstream's name`)
  }
  const plain = await fetch(`${ferry.url}/v2/pause/manifests/3.9`, { method: 'HEAD', headers: { accept } })
  t.equal(plain.headers.get('oci-namespace'), null, 'no ns, no echo')
  // Raw query strings: fetch would not send a bare %00 differently, but be explicit about the bytes.
  for (const query of ['%00', 'gcr.io%0d%0aX', '%0d%0agcr.io', 'gcr.io%00', 'unknown.example', 'gcr.io%0d%0aSet-Cookie:%20x=1']) {
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${ferry.url}/v2/pause/manifests/3.9?ns=${query}`, { method, headers: { accept } })
      t.equal(res.status, 404, `${method} ns=${query}`)
      t.equal(res.headers.get('oci-namespace'), null, `${method} ns=${query}: no echo`)
      t.equal(res.headers.get('set-cookie'), null, `${method} ns=${query}: nothing injected`)
      if (method === 'GET') t.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN', query)
      else await res.body?.cancel()
    }
  }
  const blob = await fetch(`${ferry.url}/v2/pause/blobs/${image.config.digest}?ns=%00`)
  t.equal(blob.status, 404, 'blob routes too')
  t.equal(blob.headers.get('oci-namespace'), null)
  await blob.body?.cancel()
})

t.test('a corrupt upstream never poisons the cache', async (t) => {
  const { createServer } = await import('node:http')
  const good = randomBytes(512 * 1024)
  const digest = sha256(good)
  let served = 0
  const liar = createServer((req, res) => {
    if (req.url?.includes('/blobs/')) {
      served++
      const wrong = randomBytes(good.length)
      res.writeHead(200, { 'content-length': String(wrong.length), 'docker-content-digest': digest })
      res.end(req.method === 'HEAD' ? undefined : wrong)
      return
    }
    res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => liar.close(() => resolve())))
  const port = (liar.address() as { port: number }).port
  const ferry = await startMirrorServer({ upstreams: [upstreamConfig('liar', `http://127.0.0.1:${port}`)], defaultUpstream: 'liar' })
  t.teardown(() => ferry.close())

  for (let attempt = 0; attempt < 2; attempt++) {
    const res = await fetch(`${ferry.url}/v2/victim/blobs/${digest}`)
    const body = await res.arrayBuffer().then(
      (b) => Buffer.from(b),
      () => undefined,
    )
    t.not(body && sha256(body) === digest ? 'ok' : body?.length, good.length, 'the client never receives a complete body of wrong bytes')
  }
  t.equal(served, 2, 'nothing was cached: the second request went upstream again')
})

t.test('an upstream that drops the connection mid-blob: the client is cut off, nothing is kept, the next pull fetches again', async (t) => {
  const { createServer } = await import('node:http')
  const good = randomBytes(3 * 1024 * 1024)
  const digest = sha256(good)
  let served = 0
  const flaky = createServer((req, res) => {
    if (!req.url?.includes('/blobs/')) return void res.writeHead(404).end()
    served++
    res.writeHead(200, { 'content-length': String(good.length), 'docker-content-digest': digest })
    if (req.method === 'HEAD') return void res.end()
    if (served > 1) return void res.end(good)
    // The first answer: headers and 100 KiB, then the connection goes.
    res.write(good.subarray(0, 100 * 1024), () => res.socket?.destroy())
  })
  await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => flaky.close(() => resolve())))
  const port = (flaky.address() as { port: number }).port
  const ferry = await startMirrorServer({ upstreams: [upstreamConfig('flaky', `http://127.0.0.1:${port}`)], defaultUpstream: 'flaky' })
  t.teardown(() => ferry.close())

  // Bounded only so that a hang fails here with a message instead of at tap's timeout.
  // Before its first byte was sent the client gets the OCI error; after it, a cut connection.
  const first = await fetch(`${ferry.url}/v2/flaky/app/blobs/${digest}`, { signal: AbortSignal.timeout(60_000) }).then(
    async (res) => {
      const body = Buffer.from(await res.arrayBuffer())
      if (res.status !== 200) return `error ${res.status}: ${body.toString('utf8')}`
      return body.equals(good) ? 'whole' : `short (${body.length} B)`
    },
    (err: Error) => (err.name === 'TimeoutError' ? 'hung' : 'cut off'),
  )
  t.match(
    first,
    /^(cut off|error 5\d\d: \{"errors":\[\{"code":"[A-Z_]+")/,
    'the first client gets an error or a cut connection, not a wait or a short 200',
  )
  const second = await fetch(`${ferry.url}/v2/flaky/app/blobs/${digest}`, { signal: AbortSignal.timeout(60_000) })
  t.equal(second.status, 200)
  t.ok(Buffer.from(await second.arrayBuffer()).equals(good), 'the next pull fetches again and gets the whole blob')
  t.equal(served, 2, 'one upstream request each')
})

t.test('seeding a mirrored name: blobs the upstream has are adopted; a pushed repository is authoritative', async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'seeded/app', 'v1', { layers: [randomBytes(4096)] })
  // A pusher HEADs each blob first; the mirror answers from the upstream, so it skips them all.
  for (const blob of [image.config, ...image.layers]) {
    const head = await fetch(`${ferry.url}/v2/seeded/app/blobs/${blob.digest}`, { method: 'HEAD' })
    t.equal(head.status, 200, 'HEAD reflects the upstream')
  }
  const put = await fetch(`${ferry.url}/v2/seeded/app/manifests/pushed`, {
    method: 'PUT',
    headers: { 'content-type': image.manifest.mediaType, authorization: basic(seeder.username, seeder.password) },
    body: image.manifest.bytes,
  })
  t.equal(put.status, 201, 'the manifest is accepted: the skipped blobs were brought in')

  await upstream.stop()
  const pulled = await fetch(`${ferry.url}/v2/seeded/app/manifests/pushed`, { headers: { accept } })
  t.equal(pulled.status, 200)
  const layer = await fetch(`${ferry.url}/v2/seeded/app/blobs/${image.layers[0]!.digest}`)
  t.equal(sha256(Buffer.from(await layer.arrayBuffer())), image.layers[0]!.digest, 'blobs are local now')

  const anonymousDelete = await fetch(`${ferry.url}/v2/seeded/app/manifests/pushed`, { method: 'DELETE' })
  t.equal(anonymousDelete.status, 401, 'anonymous delete is refused')
  const del = await fetch(`${ferry.url}/v2/seeded/app/manifests/pushed`, {
    method: 'DELETE',
    headers: { authorization: basic(seeder.username, seeder.password) },
  })
  t.equal(del.status, 202)
  const gone = await fetch(`${ferry.url}/v2/seeded/app/manifests/v1`, { headers: { accept } })
  t.equal(gone.status, 404, 'a pushed repository never falls back to the upstream')
})

t.test('skopeo pulls through the mirror byte-exact', { skip: missingTools('skopeo').length > 0 ? 'skopeo missing' : false }, async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'tools/skopeo-pull', 'v1', { layers: [randomBytes(200_000), randomBytes(3000)] })
  const dir = await mkdtemp(join(tmpdir(), 'ferry-skopeo-pull-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${ferry.host}/tools/skopeo-pull:v1`, `dir:${dir}`])
  t.same(await readFile(join(dir, 'manifest.json')), image.manifest.bytes, 'manifest byte-exact')
  for (const blob of [image.config, ...image.layers]) {
    t.same(await readFile(join(dir, blob.digest.slice('sha256:'.length))), blob.bytes, `blob ${blob.digest.slice(0, 19)}`)
  }
})
