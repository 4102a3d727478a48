// Two Ferry apps on one S3 bucket, as two replicas behind a load balancer without affinity: a
// chunked upload whose PATCHes alternate between them commits on either, and the replica that
// receives a chunk continues the running hash from the state saved in the bucket rather than
// re-reading the bytes already there. skopeo then pulls the image back byte-exact.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js'
import { startTestServer, type TestServer } from '../helpers/server.js'
import { imageManifest, makeBlob, pushBlob, pushManifest, randomConfig, request } from '../helpers/oci.js'
import { PseudoRandomSource } from '../helpers/pseudo-random.js'
import { missingTools, run } from '../helpers/tools.js'

const MiB = 1024 * 1024
const repo = 'shared/app'

let s3: S3TestServer
let a: TestServer
let b: TestServer
t.before(async () => {
  s3 = await startS3Server()
  a = await startTestServer({ storage: 's3', s3 })
  b = await startTestServer({ storage: 's3', s3 })
})
t.teardown(async () => {
  await a?.close()
  await b?.close()
  await s3?.close()
})

t.test('PATCHes alternate between two replicas; the other one commits; skopeo pulls it', async (t) => {
  const source = new PseudoRandomSource('shared')
  const layer = makeBlob(Buffer.concat([source.next(MiB), source.next(MiB), source.next(MiB), source.next(17)]))
  const replicas = [a, b]
  const started = await request(a, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  t.equal(started.status, 202)
  let path = started.headers.get('location')!
  const chunk = MiB - 5
  let i = 0
  for (let offset = 0; offset < layer.bytes.length; offset += chunk, i++) {
    const body = layer.bytes.subarray(offset, offset + chunk)
    const replica = replicas[(i + 1) % 2]!
    s3.requests.length = 0
    const res = await fetch(new URL(path, replica.url), {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + body.length - 1}` },
      body,
    })
    t.equal(res.status, 202, `chunk ${i} on replica ${(i + 1) % 2}`)
    t.equal(res.headers.get('range'), `0-${offset + body.length - 1}`)
    // Status HEAD, the saved hash state, the data file's index: the received bytes are not read again.
    if (offset > 0) t.equal(s3.requests.filter((r) => r === 'GetObject').length, 2, `chunk ${i}: no re-read of earlier chunks`)
    path = res.headers.get('location')!
  }
  const commit = new URL(path, replicas[(i + 1) % 2]!.url)
  commit.searchParams.set('digest', layer.digest)
  const done = await fetch(commit, { method: 'PUT' })
  t.equal(done.status, 201, await done.text())

  const config = randomConfig()
  await pushBlob(a, repo, config)
  const manifest = imageManifest({ config, layers: [layer] })
  await pushManifest(b, repo, 'v1', manifest)
  for (const replica of replicas) {
    const blob = await request(replica, `/v2/${repo}/blobs/${layer.digest}`)
    t.equal(blob.status, 200)
    t.ok(Buffer.from(await blob.arrayBuffer()).equals(layer.bytes), 'byte-exact from either replica')
  }

  const missing = missingTools('skopeo')
  if (missing.length > 0) {
    t.comment('skopeo pull skipped: skopeo not found on PATH (apt-get install skopeo)')
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'ferry-shared-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${a.host}/${repo}:v1`, `dir:${dir}`], {
    timeoutMs: 120_000,
  })
  const pulled = await readFile(join(dir, layer.digest.slice('sha256:'.length)))
  t.ok(pulled.equals(layer.bytes), 'skopeo pulled the layer byte-exact')
})
