// Server-side bulk imports (`/ferry/v1/imports`) through the real composed server (htpasswd
// accounts, role bindings): bundles built by skopeo (test/helpers/bundles.ts) sent as streamed
// bodies or read from an in-process S3 server, then read back with skopeo byte for byte;
// idempotent second POSTs, broken bundles leaving nothing tagged, cancellation mid-import,
// who may import, and what /metrics and the audit line say.
import { request as httpRequest, type ClientRequest } from 'node:http'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import t from 'tap'
import { startAuthServer } from '../helpers/auth-server.js'
import { buildBundles, names, truncated } from '../helpers/bundles.js'
import { eventually } from '../helpers/eventually.js'
import { sha256 } from '../helpers/oci-layout.js'
import { startS3Server } from '../helpers/s3-server.js'
import { missingTools, run } from '../helpers/tools.js'

interface Status {
  id: string
  namespace: string
  state: string
  bytesRead: number
  bytesWritten: number
  imagesDone: number
  imagesTotal: number
  bundleDigest?: string
  images: Array<{ source: string | null; destination: string; digest?: string; status: string; error?: string }>
  error?: string
}

const users = { admin: 'admin-pw', editor: 'editor-pw', viewer: 'viewer-pw', outsider: 'outsider-pw' }
const roles = [
  { subjects: ['admin'], namespaces: ['**'], role: 'admin' as const },
  { subjects: ['editor'], namespaces: ['test-namespace/**', 'ns-*/**'], role: 'editor' as const },
  { subjects: ['viewer'], namespaces: ['test-namespace/**'], role: 'viewer' as const },
  { subjects: ['outsider'], namespaces: ['elsewhere/**'], role: 'editor' as const },
]
const basic = (user: keyof typeof users): string => `Basic ${Buffer.from(`${user}:${users[user]}`).toString('base64')}`
const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

const missing = missingTools('skopeo', 'umoci', 'xz', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `imports e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-imports-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const s3 = await startS3Server('bundles')
  t.teardown(() => s3.close())
  const bundles = await buildBundles(join(work, 'bundles'))
  const server = await startAuthServer(t, {
    users,
    auth: { roles },
    configure: (config) => {
      // s3:// sources are read with storage.s3's connection settings; the driver stays filesystem.
      const { bucket: _bucket, ...connection } = s3.driverOptions()
      config.storage.s3 = { ...config.storage.s3, ...connection }
    },
  })
  const { url, host } = server
  const imports = `${url}/ferry/v1/imports`

  const post = async (body: Buffer, namespace: string, user: keyof typeof users | undefined, query = ''): Promise<Response> =>
    fetch(`${imports}?namespace=${namespace}${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', ...(user ? { authorization: basic(user) } : {}) },
      body,
    })
  const statusOf = async (location: string, user: keyof typeof users = 'admin'): Promise<Status> => {
    const response = await fetch(new URL(location, url), { headers: { authorization: basic(user) } })
    if (response.status !== 200) throw new Error(`GET ${location}: ${response.status} ${await response.text()}`)
    return (await response.json()) as Status
  }
  const finished = (location: string): Promise<Status> =>
    eventually(
      async () => {
        const status = await statusOf(location)
        return ['done', 'partial', 'failed', 'cancelled'].includes(status.state) ? status : undefined
      },
      { timeoutMs: 30_000, message: `import ${location} finished` },
    )
  const inspectRaw = async (ref: string): Promise<Buffer> =>
    Buffer.from((await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', 'admin:admin-pw', `docker://${ref}`)).stdout, 'utf8')
  // Ferry falls back to its (unreachable) default upstream for what it lacks: "not tagged" is 404 or 503.
  const tagged = async (repo: string, tag: string): Promise<boolean> => {
    const response = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD', headers: { authorization: basic('admin') } })
    return response.status === 200
  }
  const importOf = async (file: string, namespace: string): Promise<{ response: Response; status: Status; location: string }> => {
    const response = await post(await readFile(file), namespace, 'editor')
    const location = response.headers.get('location') ?? ''
    return { response, status: await finished(location), location }
  }

  await t.test('who may import: anonymous gets a challenge, a viewer or another namespace editor 403', async (t) => {
    const body = await readFile(bundles.ociTar)
    const anonymous = await post(body, 'test-namespace', undefined)
    t.equal(anonymous.status, 401)
    t.match(
      anonymous.headers.get('www-authenticate'),
      /^Bearer realm=".*",service=".*",scope="repository:test-namespace\/ferry-bundle-staging:pull,push"/,
    )
    t.equal((await post(body, 'test-namespace', 'viewer')).status, 403)
    t.equal((await post(body, 'test-namespace', 'outsider')).status, 403)
    t.equal((await fetch(imports)).status, 401, 'listing wants a login too')
    t.equal((await post(body, 'Not_A_Namespace', 'admin')).status, 400)
    t.notOk(await tagged('test-namespace/x/multi', '2.0'), 'nothing was imported')
  })

  await t.test(
    'a streamed multi-arch .tar.xz lands byte-exact; skopeo pulls it; the same bundle again finds the first import',
    async (t) => {
      const body = await readFile(bundles.ociTarXz)
      const { response, status, location } = await importOf(bundles.ociTarXz, 'test-namespace')
      t.equal(response.status, 202)
      t.match(location, /^\/ferry\/v1\/imports\/[0-9a-f-]{36}$/)
      t.equal(status.state, 'done', status.error ?? JSON.stringify(status.images))
      t.equal(status.bytesRead, body.length)
      t.equal(status.bundleDigest, sha256(body))
      t.same([status.imagesDone, status.imagesTotal], [1, 1])
      t.match(status.images, [
        { source: names.multi, destination: 'test-namespace/x/multi:2.0', digest: bundles.index.digest, status: 'pushed' },
      ])
      t.ok((await inspectRaw(`${host}/test-namespace/x/multi:2.0`)).equals(bundles.index.bytes), 'the index has its original bytes')
      t.ok((await inspectRaw(`${host}/test-namespace/x/multi@${bundles.amd64.digest}`)).equals(bundles.amd64.bytes), 'and each platform')
      const pulled = join(work, 'pulled-multi')
      await skopeo(
        'copy',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        '--src-creds',
        'admin:admin-pw',
        `docker://${host}/test-namespace/x/multi:2.0`,
        `oci:${pulled}:back`,
      )
      const index = JSON.parse(await readFile(join(pulled, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
      t.equal(index.manifests[0]?.digest, bundles.index.digest, 'skopeo pulled every platform with the same digests')

      const again = await post(body, 'test-namespace', 'editor')
      t.equal(again.status, 200, 'the same bytes again: the earlier import answers')
      t.equal(again.headers.get('location'), location)
      const named = await post(body, 'test-namespace', 'editor', `&digest=${sha256(body)}`)
      t.equal(named.status, 200, 'named by its digest: found without reading it')
      t.equal(named.headers.get('location'), location)
      const listed = (await (await fetch(imports, { headers: { authorization: basic('editor') } })).json()) as { imports: Status[] }
      t.equal(listed.imports.filter((i) => i.namespace === 'test-namespace' && i.state === 'done').length, 1, 'one import, not three')
      const outsider = (await (await fetch(imports, { headers: { authorization: basic('outsider') } })).json()) as { imports: Status[] }
      t.same(outsider.imports, [], 'an editor elsewhere sees none of them')
      t.equal((await fetch(new URL(location, url), { headers: { authorization: basic('outsider') } })).status, 403)
    },
  )

  await t.test('docker-archive, zstd oci-archive and a tar of several archives', async (t) => {
    const legacy = await importOf(bundles.dockerArchive, 'ns-legacy')
    t.equal(legacy.status.state, 'done', legacy.status.error ?? JSON.stringify(legacy.status.images))
    const manifest = JSON.parse((await inspectRaw(`${host}/ns-legacy/anthos-baremetal-release/foo:1.8.0`)).toString('utf8')) as {
      config: { digest: string }
    }
    t.equal(manifest.config.digest, bundles.amd64.manifest.config.digest, 'the legacy save keeps its config')

    const zstd = await importOf(bundles.ociTarZst, 'ns-zstd')
    t.equal(zstd.status.state, 'done', zstd.status.error ?? '')
    t.ok((await inspectRaw(`${host}/ns-zstd/x/multi:2.0`)).equals(bundles.index.bytes))

    const nested = await importOf(bundles.nestedTar, 'ns-nested')
    t.equal(nested.status.state, 'done', nested.status.error ?? JSON.stringify(nested.status.images))
    t.same(nested.status.images.map((i) => i.destination).sort(), [
      'ns-nested/anthos-baremetal-release/foo:1.8.0',
      'ns-nested/x/single:1.0',
    ])
    t.ok((await inspectRaw(`${host}/ns-nested/x/single:1.0`)).equals(bundles.amd64.bytes))
  })

  await t.test('a truncated or corrupt bundle fails and tags nothing', async (t) => {
    const cut = await importOf(await truncated(bundles.ociTarGz, 0.6), 'ns-broken')
    t.equal(cut.status.state, 'failed')
    t.match(cut.status.error, /bundle/)
    t.notOk(await tagged('ns-broken/x/multi', '2.0'))

    // One layer's bytes changed inside an uncompressed oci-archive: its digest no longer matches.
    const bytes = Buffer.from(await readFile(bundles.ociTar))
    const layer = bundles.arm64.manifest.layers[0]!.digest.slice('sha256:'.length)
    const at = bytes.indexOf(Buffer.from(`blobs/sha256/${layer}`))
    t.ok(at >= 0, 'found the layer entry')
    bytes[at + 512 + 100] = bytes[at + 512 + 100]! ^ 0xff
    const response = await post(bytes, 'ns-corrupt', 'editor')
    const status = await finished(response.headers.get('location') ?? '')
    t.equal(status.state, 'failed')
    t.match(status.images[0]?.error, /content does not match its digest/)
    t.notOk(await tagged('ns-corrupt/x/multi', '2.0'), 'the index is not tagged')

    // Bytes that are not the bundle the request named by its digest: refused before any tag.
    const other = await readFile(bundles.ociTar)
    const named = await post(other, 'ns-misnamed', 'editor', `&digest=${sha256('something else')}`)
    const misnamed = await finished(named.headers.get('location') ?? '')
    t.equal(misnamed.state, 'failed')
    t.match(misnamed.error, /not sha256:/)
    t.notOk(await tagged('ns-misnamed/x/multi', '2.0'))
  })

  await t.test('an s3:// source is read with ranged GETs; the same object again finds the first import', async (t) => {
    const client = new S3Client({ ...s3.driverOptions(), forcePathStyle: true, region: 'us-east-1', endpoint: s3.endpoint })
    t.teardown(() => client.destroy())
    await client.send(new PutObjectCommand({ Bucket: 'bundles', Key: 'site/multi.tar.zst', Body: await readFile(bundles.ociTarZst) }))
    const start = (): Promise<Response> =>
      fetch(imports + '?namespace=ns-s3', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: basic('editor') },
        body: JSON.stringify({ source: 's3://bundles/site/multi.tar.zst' }),
      })
    const before = s3.requests.filter((r) => r === 'GetObject').length
    const response = await start()
    t.equal(response.status, 202)
    const location = response.headers.get('location') ?? ''
    const status = await finished(location)
    t.equal(status.state, 'done', status.error ?? '')
    t.ok(s3.requests.filter((r) => r === 'GetObject').length > before, 'read from the object store')
    t.ok((await inspectRaw(`${host}/ns-s3/x/multi:2.0`)).equals(bundles.index.bytes))
    const again = await start()
    t.equal(again.status, 200)
    t.equal(again.headers.get('location'), location)
    const missingObject = await fetch(imports + '?namespace=ns-s3', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: basic('editor') },
      body: JSON.stringify({ source: 's3://bundles/no/such.tar' }),
    })
    t.equal(missingObject.status, 404)
  })

  await t.test('DELETE mid-import cancels it; nothing is tagged', async (t) => {
    const body = await readFile(bundles.ociTar)
    const { request, answered } = streamingPost(`${imports}?namespace=ns-cancel`, body.length)
    answered.catch(() => undefined)
    request.write(body.subarray(0, Math.floor(body.length / 2)))
    t.teardown(() => {
      if (!t.passing()) t.comment(server.logs.slice(-5).join('\n'))
    })
    const running = await eventually(async () => {
      const listed = (await (await fetch(imports, { headers: { authorization: basic('admin') } })).json()) as { imports: Status[] }
      return listed.imports.find((i) => i.namespace === 'ns-cancel' && i.state === 'reading' && i.bytesRead > 0)
    })
    const cancelled = await fetch(`${imports}/${running.id}`, { method: 'DELETE', headers: { authorization: basic('editor') } })
    t.equal(cancelled.status, 200)
    t.equal(((await cancelled.json()) as Status).state, 'cancelled')
    request.destroy()
    await answered.catch(() => undefined)
    t.equal((await statusOf(`/ferry/v1/imports/${running.id}`)).state, 'cancelled')
    t.notOk(await tagged('ns-cancel/x/multi', '2.0'))
  })

  await t.test('metrics count imports by state, bytes and images; each import has an audit line', async (t) => {
    const metrics = await (await fetch(`${url}/metrics`)).text()
    t.match(metrics, /ferry_imports\{state="done"\} [1-9]/)
    t.match(metrics, /ferry_imports\{state="failed"\} [1-9]/)
    t.match(metrics, /ferry_imports\{state="cancelled"\} 1/)
    t.match(metrics, /ferry_import_read_bytes_total [1-9]/)
    t.match(metrics, /ferry_import_images_total\{result="pushed"\} [1-9]/)
    const audits = server.records().filter((r) => r.audit === true && r.action === 'import')
    t.ok(audits.length >= 6, `${audits.length} audit lines`)
    t.match(audits[0], { user: 'editor', namespace: 'test-namespace', state: 'done', source: 'body' })
  })
}

/** A POST whose body the test writes piece by piece (content-length known up front). */
function streamingPost(url: string, length: number): { request: ClientRequest; answered: Promise<number> } {
  const request = httpRequest(url, {
    method: 'POST',
    headers: { authorization: basic('editor'), 'content-type': 'application/octet-stream', 'content-length': String(length) },
  })
  const answered = new Promise<number>((resolve, reject) => {
    request.on('response', (response) => {
      response.resume()
      resolve(response.statusCode ?? 0)
    })
    request.on('error', reject)
  })
  return { request, answered }
}
