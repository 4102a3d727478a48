// The in-memory tag / manifest / repository metadata (storage/metadata-cache.ts) through the real
// HTTP server: this process's writes are visible at once, and replicas on shared storage converge.
import t from 'tap'
import { startTestServer, type TestServer } from '../helpers/server.js'
import { eventually } from '../helpers/eventually.js'
import { pushImage, pushManifest, request } from '../helpers/oci.js'

const accept = 'application/vnd.oci.image.manifest.v1+json, */*'

/** Status and Docker-Content-Digest of a manifest request. */
async function manifest(
  server: TestServer,
  repo: string,
  reference: string,
  method = 'GET',
): Promise<{ status: number; digest: string | null }> {
  const res = await request(server, `/v2/${repo}/manifests/${reference}`, { method, headers: { accept } })
  await res.arrayBuffer()
  return { status: res.status, digest: res.headers.get('docker-content-digest') }
}

async function tagList(server: TestServer, repo: string): Promise<string[] | number> {
  const res = await request(server, `/v2/${repo}/tags/list`)
  if (res.status !== 200) {
    await res.arrayBuffer()
    return res.status
  }
  return ((await res.json()) as { tags: string[] }).tags
}

t.test('one process: re-tags and deletes are visible to the very next request', async (t) => {
  const server = await startTestServer({ metadataTtlMs: 60_000 }) // nothing expires during the test
  t.teardown(() => server.close())
  const repo = 'cache/own-writes'
  t.same(await manifest(server, repo, 'latest'), { status: 404, digest: null }, 'a miss, now remembered')
  t.equal(await tagList(server, repo), 404, 'unknown repository, now remembered')

  const first = await pushImage(server, repo, 'latest')
  t.same(await manifest(server, repo, 'latest'), { status: 200, digest: first.manifest.digest }, 'the push replaced the remembered miss')
  t.same(await tagList(server, repo), ['latest'], 'the repository exists now')

  const second = await pushImage(server, repo, 'latest')
  t.same(await manifest(server, repo, 'latest', 'HEAD'), { status: 200, digest: second.manifest.digest }, 're-tag by push')
  await pushManifest(server, repo, 'latest', first.manifest)
  t.same(await manifest(server, repo, 'latest'), { status: 200, digest: first.manifest.digest }, 're-tag to an existing manifest')

  const del = await request(server, `/v2/${repo}/manifests/${first.manifest.digest}`, { method: 'DELETE' })
  t.equal(del.status, 202)
  t.equal((await manifest(server, repo, 'latest')).status, 404, 'the deleted manifest took its tag along')
  t.equal((await manifest(server, repo, first.manifest.digest, 'HEAD')).status, 404, 'and is gone by digest')
  t.same(await manifest(server, repo, second.manifest.digest), { status: 200, digest: second.manifest.digest }, 'the other one stays')

  await pushManifest(server, repo, 'v2', second.manifest)
  t.equal((await manifest(server, repo, 'v2')).status, 200)
  t.equal((await request(server, `/v2/${repo}/manifests/v2`, { method: 'DELETE' })).status, 202)
  t.equal((await manifest(server, repo, 'v2')).status, 404, 'a deleted tag')
  t.same(await tagList(server, repo), [], 'the repository still exists (it holds blobs), with no tags')
})

t.test('two replicas on shared storage converge within the TTL', async (t) => {
  const writer = await startTestServer({ metadataTtlMs: 150 })
  const reader = await startTestServer({ root: writer.root, ...(writer.s3 ? { s3: writer.s3 } : {}), metadataTtlMs: 150 })
  t.teardown(async () => {
    await reader.app.close()
    await writer.close()
  })
  const repo = 'cache/replicas'
  t.equal((await manifest(reader, repo, 'latest')).status, 404, 'the reader remembers a miss')
  t.equal(await tagList(reader, repo), 404, 'and an unknown repository')

  const first = await pushImage(writer, repo, 'latest')
  await eventually(async () => (await manifest(reader, repo, 'latest')).digest === first.manifest.digest, {
    message: 'the reader to see the push',
  })
  await eventually(async () => Array.isArray(await tagList(reader, repo)), { message: 'the reader to see the repository' })

  const second = await pushImage(writer, repo, 'latest')
  await eventually(async () => (await manifest(reader, repo, 'latest')).digest === second.manifest.digest, {
    message: 'the reader to see the re-tag',
  })

  t.equal((await request(writer, `/v2/${repo}/manifests/${second.manifest.digest}`, { method: 'DELETE' })).status, 202)
  await eventually(async () => (await manifest(reader, repo, 'latest')).status === 404, { message: 'the reader to see the delete (tag)' })
  await eventually(async () => (await manifest(reader, repo, second.manifest.digest, 'HEAD')).status === 404, {
    message: 'the reader to see the delete (digest)',
  })
  t.pass('converged')
})

t.test('metadataTtl 0 reads storage on every request', async (t) => {
  const writer = await startTestServer()
  const reader = await startTestServer({ root: writer.root, ...(writer.s3 ? { s3: writer.s3 } : {}), metadataTtlMs: 0 })
  t.teardown(async () => {
    await reader.app.close()
    await writer.close()
  })
  const repo = 'cache/uncached'
  t.equal((await manifest(reader, repo, 'latest')).status, 404)
  const image = await pushImage(writer, repo, 'latest')
  t.same(await manifest(reader, repo, 'latest'), { status: 200, digest: image.manifest.digest }, 'seen at once')
  t.equal((await request(writer, `/v2/${repo}/manifests/latest`, { method: 'DELETE' })).status, 202)
  t.equal((await manifest(reader, repo, 'latest')).status, 404, 'the delete too')
})
