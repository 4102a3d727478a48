// Repository names, path handling and the endpoints outside the OCI workflows: names whose
// components look like endpoint words, NAME_INVALID, path traversal, unknown endpoints and
// methods, health, readiness and metrics.
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { startTestServer, type TestServer } from '../helpers/server.js'
import {
  emptyDigest,
  expectError,
  imageManifest,
  pushBlob,
  pushImage,
  pushManifest,
  randomBlob,
  randomDigest,
  rawHttp,
  request,
  storedBlobFiles,
  storedFiles,
} from '../helpers/oci.js'

let server: TestServer
t.before(async () => {
  server = await startTestServer()
})
t.teardown(() => server?.close())

async function status(path: string, init: RequestInit = {}, srv = server): Promise<number> {
  const res = await request(srv, path, init)
  await res.arrayBuffer()
  return res.status
}

/** A request sent verbatim (fetch would resolve dot segments first); the answer's status and error code. */
async function raw(t: Test, method: string, target: string, body = ''): Promise<{ status: number; code?: string }> {
  const res = await rawHttp(
    server,
    `${method} ${target} HTTP/1.1\r\nHost: ${server.host}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
  let code: string | undefined
  try {
    code = (JSON.parse(res.body.toString()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code
  } catch {
    t.fail(`${method} ${target}: the error body is JSON`)
  }
  return code === undefined ? { status: res.status } : { status: res.status, code }
}

/** Pushes blobs chunked, pushes a tagged manifest, and reads everything back under `repo`. */
async function roundTrip(t: Test, repo: string): Promise<void> {
  const image = await pushImage(server, repo, 'latest')
  const layer = randomBlob(100)
  const start = await request(server, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  t.equal(start.status, 202, `${repo}: upload started`)
  const location = new URL(start.headers.get('location')!, server.url)
  t.equal(location.pathname.slice(0, `/v2/${repo}/blobs/uploads/`.length), `/v2/${repo}/blobs/uploads/`, 'Location keeps the name')
  const patch = await fetch(location, { method: 'PATCH', headers: { 'content-range': `0-${layer.size - 1}` }, body: layer.bytes })
  t.equal(patch.status, 202, `${repo}: chunk accepted`)
  location.searchParams.set('digest', layer.digest)
  t.equal((await fetch(location, { method: 'PUT' })).status, 201, `${repo}: upload closed`)

  const manifest = imageManifest({ config: image.config, layers: [...image.layers, layer] })
  await pushManifest(server, repo, 'list', manifest)
  for (const reference of ['latest', 'list', manifest.digest]) {
    t.equal(await status(`/v2/${repo}/manifests/${reference}`), 200, `${repo}: manifest ${reference.slice(0, 12)}`)
  }
  t.equal(await status(`/v2/${repo}/blobs/${layer.digest}`), 200, `${repo}: blob`)
  const tags = await request(server, `/v2/${repo}/tags/list`)
  t.same(await tags.json(), { name: repo, tags: ['latest', 'list'] }, `${repo}: tags`)
  t.equal(await status(`/v2/${repo}/referrers/${manifest.digest}`), 200, `${repo}: referrers`)
  t.equal(await status(`/v2/${repo}/blobs/${layer.digest}`, { method: 'DELETE' }), 202, `${repo}: blob delete`)
  t.equal(await status(`/v2/${repo}/manifests/list`, { method: 'DELETE' }), 202, `${repo}: tag delete`)
}

t.test('names whose components are endpoint words', async (t) => {
  for (const repo of [
    'a/blobs/manifests/tags/uploads',
    'blobs',
    'manifests/blobs',
    'uploads/blobs/uploads',
    'x/tags/list',
    'referrers/manifests',
    'v2/library/nginx',
  ]) {
    await roundTrip(t, repo)
  }
  const catalog = (await (await request(server, '/v2/_catalog')).json()) as { repositories: string[] }
  t.ok(catalog.repositories.includes('a/blobs/manifests/tags/uploads'), 'the catalog lists them')
})

t.test('the full name grammar and many components', async (t) => {
  await roundTrip(t, 'a.b/c_d/e__f/g---h/0/1/2/3/4/5/6/7/8/9')
  const long = Array.from({ length: 8 }, () => 'abcdefghijklmnopqrstuvwxyz012345')
    .join('/')
    .slice(0, 255)
  t.equal(long.length, 255)
  await roundTrip(t, long.replace(/\/$/, 'x'))
})

t.test('malformed names are NAME_INVALID', async (t) => {
  const names = ['Upper/case', 'a..b', 'a___b', '-a', 'a-', 'a/_b', 'a//b', 'a/', `${'a'.repeat(256)}`, 'a%20b', 'caf%C3%A9']
  for (const name of names) {
    await expectError(t, await request(server, `/v2/${name}/manifests/latest`), 400, 'NAME_INVALID', name.slice(0, 20))
    await expectError(
      t,
      await request(server, `/v2/${name}/blobs/uploads/`, { method: 'POST' }),
      400,
      'NAME_INVALID',
      `${name.slice(0, 20)} upload`,
    )
  }
  for (const target of [
    '/v2/../manifests/latest',
    '/v2/a/../b/manifests/latest',
    '/v2/%2e%2e/manifests/latest',
    '/v2/a/%2E%2E/b/tags/list',
    '/v2/./a/blobs/uploads/',
  ]) {
    t.same(await raw(t, 'GET', target), { status: 400, code: 'NAME_INVALID' }, target)
  }
  const badEncoding = await raw(t, 'GET', '/v2/a%ZZb/manifests/latest')
  t.equal(badEncoding.status, 400, 'malformed percent-encoding')
  t.ok(badEncoding.code, 'is answered with an OCI error body')
  await expectError(
    t,
    await request(server, `/v2/ok/blobs/uploads/?mount=${emptyDigest}&from=..%2Fx`, { method: 'POST' }),
    400,
    'NAME_INVALID',
    'a malformed from',
  )
})

t.test('path traversal never reaches outside the storage root', async (t) => {
  const srv = await startTestServer()
  t.teardown(() => srv.close())
  const parent = dirname(srv.root)
  const marker = `ferry-escape-${randomBytes(6).toString('hex')}`
  const blob = randomBlob(32)
  const manifest = '{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"' + emptyDigest + '","size":0},"layers":[]}'
  const targets = [
    `/v2/../../${marker}/blobs/uploads/?digest=${blob.digest}`,
    `/v2/%2e%2e/%2e%2e/%2e%2e/${marker}/blobs/uploads/?digest=${blob.digest}`,
    `/v2/..%2f..%2f..%2f${marker}/blobs/uploads/?digest=${blob.digest}`,
    `/v2/ok/..%5c..%5c${marker}/blobs/uploads/?digest=${blob.digest}`,
    `/v2/ok/blobs/uploads/?mount=${emptyDigest}&from=..%2F..%2F${marker}`,
    `/v2/ok%00/${marker}/blobs/uploads/`,
  ]
  for (const target of targets) {
    const res = await raw(t, 'POST', target, blob.bytes.toString('latin1'))
    t.ok(res.status >= 400 && res.status < 500, `POST ${target.slice(0, 50)}: ${res.status} ${res.code}`)
  }
  for (const target of [
    `/v2/../../${marker}/manifests/latest`,
    `/v2/ok/manifests/..%2f..%2f..%2f${marker}`,
    `/v2/ok/manifests/%2e%2e`,
    `/v2/%2e%2e%2f%2e%2e%2f${marker}/manifests/latest`,
  ]) {
    const res = await raw(t, 'PUT', target, manifest)
    t.ok(res.status >= 400 && res.status < 500, `PUT ${target.slice(0, 50)}: ${res.status} ${res.code}`)
  }
  for (const target of [`/v2/ok/blobs/..%2f..%2f${marker}`, `/v2/ok/referrers/..%2f${marker}`, `/v2/ok/tags/list?last=../../${marker}`]) {
    const res = await raw(t, 'GET', target)
    t.ok(res.status >= 400 && res.status < 500, `GET ${target.slice(0, 50)}: ${res.status} ${res.code}`)
  }
  t.same(
    (await readdir(parent)).filter((name) => name.includes(marker)),
    [],
    'nothing appeared beside the storage root',
  )
  // Inside the storage: read through its driver, so that the check holds on S3 too.
  const stored = await Promise.all(
    (await srv.driver.list('')).map(async (top) => [top, ...(await storedFiles(srv, top)).map((file) => `${top}/${file}`)]),
  )
  t.same(
    stored.flat().filter((path) => path.includes(marker)),
    [],
    'nor inside it',
  )
  t.same(await storedBlobFiles(srv), [], 'no blob was stored')
})

t.test('unknown endpoints are 404 with a JSON error', async (t) => {
  for (const path of ['/v2/foo', '/v2/foo/bar', '/v2/foo/tags/list/extra', '/v2/foo/manifests/', '/v2/foo/blobs/', '/nothing', '/v3/']) {
    await expectError(t, await request(server, path), 404, 'UNSUPPORTED', path)
  }
  const head = await request(server, '/v2/foo/bar', { method: 'HEAD' })
  t.equal(head.status, 404)
})

t.test('unsupported methods are 405 with an Allow header', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['POST', '/v2/repo/manifests/latest', 'GET, HEAD, PUT, DELETE'],
    ['PATCH', `/v2/repo/blobs/${randomDigest()}`, 'GET, HEAD, DELETE'],
    ['PUT', '/v2/repo/tags/list', 'GET'],
    ['DELETE', '/v2/_catalog', 'GET'],
    ['PUT', '/v2/repo/blobs/uploads/', 'POST'],
    ['POST', `/v2/repo/referrers/${randomDigest()}`, 'GET'],
    ['POST', '/v2/repo/blobs/uploads/11111111-2222-4333-8444-555555555555', 'GET, PATCH, PUT, DELETE'],
    ['DELETE', '/v2/', 'GET, HEAD'],
    ['OPTIONS', '/v2/repo/manifests/latest', 'GET, HEAD, PUT, DELETE'],
  ]
  for (const [method, path, allow] of cases) {
    const res = await request(server, path, { method })
    t.equal(res.headers.get('allow'), allow, `${method} ${path.slice(0, 40)} Allow`)
    await expectError(t, res, 405, 'UNSUPPORTED', `${method} ${path.slice(0, 40)}`)
  }
})

t.test('health, readiness and metrics', async (t) => {
  const srv = await startTestServer()
  t.teardown(() => srv.close())
  const health = await request(srv, '/healthz')
  t.equal(health.status, 200)
  t.same(await health.json(), { status: 'ok' })
  const ready = await request(srv, '/readyz')
  t.equal(ready.status, 200)
  t.same(await ready.json(), { status: 'ready' })
  t.equal((await request(srv, '/v2/')).headers.get('docker-distribution-api-version'), 'registry/2.0')

  const image = await pushImage(srv, 'metrics/repo', 'latest')
  for (let i = 0; i < 3; i++) t.equal(await status('/v2/metrics/repo/manifests/latest', {}, srv), 200)
  t.equal(await status(`/v2/metrics/repo/manifests/${randomDigest()}`, { method: 'HEAD' }, srv), 404)
  t.equal(await status(`/v2/metrics/repo/blobs/${image.config.digest}`, {}, srv), 200)
  t.equal(await status('/nothing', {}, srv), 404)

  const res = await request(srv, '/metrics')
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type') ?? '', /^text\/plain/)
  const text = await res.text()
  const sample = (labels: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`ferry_http_requests_total{${labels}}`))
    return line === undefined ? undefined : Number(line.split(' ').pop())
  }
  t.equal(sample('route="manifest",method="GET",status="200"'), 3, 'manifest GETs counted by route')
  t.equal(sample('route="manifest",method="HEAD",status="404"'), 1)
  t.equal(sample('route="manifest",method="PUT",status="201"'), 1)
  t.equal(sample('route="upload-start",method="POST",status="201"'), 2, 'config and layer pushes')
  t.equal(sample('route="blob",method="GET",status="200"'), 1)
  t.equal(sample('route="base",method="GET",status="200"'), 1)
  t.ok((sample('route="unmatched",method="GET",status="404"') ?? 0) >= 1, 'unmatched paths have one label')
  t.notMatch(text, /metrics\/repo/, 'no repository names in labels')
  t.notMatch(text, /sha256:/, 'no digests in labels')
  t.match(text, /ferry_http_request_duration_seconds_bucket\{[^}]*route="manifest"/)
  t.match(text, /ferry_http_sent_bytes_total\{route="blob"\} [1-9]/)
  const received = Number(/ferry_http_received_bytes_total\{route="upload-start"\} (\d+)/.exec(text)?.[1])
  const pushed = image.config.size + image.layers[0]!.size
  t.ok(received > pushed, `upload bytes received (${received}) include the ${pushed} bytes pushed and the request heads`)

  // Counted between reads and added when read: every read is exact, nothing is added twice.
  for (let i = 0; i < 2; i++) t.equal(await status('/v2/metrics/repo/manifests/latest', {}, srv), 200)
  const again = await (await request(srv, '/metrics')).text()
  const line = again.split('\n').find((l) => l.startsWith('ferry_http_requests_total{route="manifest",method="GET",status="200"}'))
  t.equal(Number(line?.split(' ').pop()), 5, 'a second read adds the requests since the first, once')
  const sentBefore = Number(/ferry_http_sent_bytes_total\{route="manifest"\} (\d+)/.exec(text)?.[1])
  const sentAfter = Number(/ferry_http_sent_bytes_total\{route="manifest"\} (\d+)/.exec(again)?.[1])
  t.ok(
    sentAfter >= sentBefore + 2 * image.manifest.bytes.length,
    `bytes sent grow by at least the 2 manifests (${sentBefore} → ${sentAfter})`,
  )
})

t.test('names are case-sensitive: an uppercase variant of a real name is NAME_INVALID', async (t) => {
  const blob = randomBlob(10)
  await pushBlob(server, 'names/ok', blob)
  await expectError(t, await request(server, `/v2/names/OK/blobs/${blob.digest}`), 400, 'NAME_INVALID', 'names are case-sensitive')
})
