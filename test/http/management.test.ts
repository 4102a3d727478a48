// Content management over HTTP against a real server (conformance 04_management + checklist §6):
// deleting tags, manifests and blobs, and what a registry with deletes disabled answers.
import t from 'tap'
import type { Test } from 'tap'
import { startTestServer, type TestServer } from '../helpers/server.js'
import {
  expectError,
  imageManifest,
  makeBlob,
  mediaTypes,
  pushBlob,
  pushImage,
  pushManifest,
  randomBlob,
  randomDigest,
  request,
} from '../helpers/oci.js'

let server: TestServer
t.before(async () => {
  server = await startTestServer()
})
t.teardown(() => server?.close())

async function status(path: string, method = 'GET', srv = server): Promise<number> {
  const res = await request(srv, path, { method })
  await res.arrayBuffer()
  return res.status
}

async function tags(repo: string, srv = server): Promise<string[] | number> {
  const res = await request(srv, `/v2/${repo}/tags/list`)
  if (res.status !== 200) {
    await res.arrayBuffer()
    return res.status
  }
  return ((await res.json()) as { tags: string[] }).tags
}

async function del(t: Test, path: string, expected = 202, srv = server): Promise<Response> {
  const res = await request(srv, path, { method: 'DELETE' })
  t.equal(res.status, expected, `DELETE ${path.split('/').slice(-2).join('/')}`)
  return res
}

t.test('deleting a tag leaves the manifest', async (t) => {
  const repo = 'manage/tags'
  const image = await pushImage(server, repo, 'tagtest0')
  await pushManifest(server, repo, 'keep', image.manifest)
  const res = await del(t, `/v2/${repo}/manifests/tagtest0`)
  t.equal(res.headers.get('content-length'), '0')
  t.equal(await status(`/v2/${repo}/manifests/tagtest0`, 'HEAD'), 404, 'HEAD of the tag is 404 at once')
  await expectError(t, await request(server, `/v2/${repo}/manifests/tagtest0`), 404, 'MANIFEST_UNKNOWN')
  t.equal(await status(`/v2/${repo}/manifests/${image.manifest.digest}`), 200, 'the manifest is still there')
  t.same(await tags(repo), ['keep'])
  await expectError(
    t,
    await request(server, `/v2/${repo}/manifests/tagtest0`, { method: 'DELETE' }),
    404,
    'MANIFEST_UNKNOWN',
    'deleting it again',
  )
  await expectError(t, await request(server, `/v2/${repo}/manifests/.bad`, { method: 'DELETE' }), 400, 'TAG_INVALID', 'a malformed tag')
})

t.test('deleting a manifest takes its tags with it', async (t) => {
  const repo = 'manage/manifests'
  const doomed = await pushImage(server, repo, 'test0')
  for (const tag of ['test1', 'test2']) await pushManifest(server, repo, tag, doomed.manifest)
  const kept = await pushImage(server, repo, 'other')
  t.same(await tags(repo), ['other', 'test0', 'test1', 'test2'])

  const res = await del(t, `/v2/${repo}/manifests/${doomed.manifest.digest}`)
  t.equal(res.headers.get('content-length'), '0')
  for (const reference of [doomed.manifest.digest, 'test0', 'test1', 'test2']) {
    t.equal(await status(`/v2/${repo}/manifests/${reference}`), 404, `GET ${reference.slice(0, 16)} is 404`)
    t.equal(await status(`/v2/${repo}/manifests/${reference}`, 'HEAD'), 404, `HEAD ${reference.slice(0, 16)} is 404`)
  }
  t.same(await tags(repo), ['other'], 'its tags are gone from the list')
  t.equal(await status(`/v2/${repo}/manifests/other`), 200, 'other manifests are untouched')
  t.equal(await status(`/v2/${repo}/blobs/${doomed.layers[0]!.digest}`), 200, 'blobs stay until deleted themselves')

  await expectError(
    t,
    await request(server, `/v2/${repo}/manifests/${doomed.manifest.digest}`, { method: 'DELETE' }),
    404,
    'MANIFEST_UNKNOWN',
    'again',
  )
  await expectError(
    t,
    await request(server, `/v2/${repo}/manifests/${randomDigest()}`, { method: 'DELETE' }),
    404,
    'MANIFEST_UNKNOWN',
    'unknown digest',
  )
  await expectError(
    t,
    await request(server, `/v2/never/pushed/manifests/${randomDigest()}`, { method: 'DELETE' }),
    404,
    'MANIFEST_UNKNOWN',
    'unknown repository',
  )
  await expectError(t, await request(server, `/v2/${repo}/manifests/sha256:short`, { method: 'DELETE' }), 400, 'DIGEST_INVALID')

  const again = await pushManifest(server, repo, 'test0', doomed.manifest)
  t.equal(again.status, 201, 'a deleted manifest can be pushed again')
  t.same(await tags(repo), ['other', 'test0'])
  t.equal(await status(`/v2/${repo}/manifests/${kept.manifest.digest}`), 200)
})

t.test('deleting the last manifest leaves an empty tag list', async (t) => {
  // The management workflow lists tags after deleting its only manifest and expects a 200.
  const repo = 'manage/last'
  const image = await pushImage(server, repo, 'tagtest0')
  t.same(await tags(repo), ['tagtest0'])
  await del(t, `/v2/${repo}/manifests/tagtest0`)
  await del(t, `/v2/${repo}/manifests/${image.manifest.digest}`)
  t.same(await tags(repo), [], 'an existing repository with no tags')
  for (const blob of [image.config, ...image.layers]) await del(t, `/v2/${repo}/blobs/${blob.digest}`)
  t.ok([200, 404].includes((await request(server, `/v2/${repo}/tags/list`)).status), 'an emptied repository: 200 or 404')
})

t.test('deleting a blob', async (t) => {
  const repo = 'manage/blobs'
  const blob = randomBlob(900)
  await pushBlob(server, repo, blob)
  const res = await del(t, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(res.headers.get('content-length'), '0')
  t.equal(await status(`/v2/${repo}/blobs/${blob.digest}`, 'HEAD'), 404, 'HEAD is 404 at once')
  await expectError(t, await request(server, `/v2/${repo}/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN')
  await expectError(
    t,
    await request(server, `/v2/${repo}/blobs/${blob.digest}`, { method: 'DELETE' }),
    404,
    'BLOB_UNKNOWN',
    'deleting it again',
  )
  await expectError(
    t,
    await request(server, `/v2/${repo}/blobs/${randomDigest()}`, { method: 'DELETE' }),
    404,
    'BLOB_UNKNOWN',
    'an unknown blob',
  )
  await expectError(t, await request(server, `/v2/${repo}/blobs/sha256:zz`, { method: 'DELETE' }), 400, 'DIGEST_INVALID')

  await pushBlob(server, repo, blob)
  const get = await request(server, `/v2/${repo}/blobs/${blob.digest}`)
  t.equal(get.status, 200, 're-uploading the same digest works')
  t.same(Buffer.from(await get.arrayBuffer()), blob.bytes)

  // The same `{}` blob is pushed and deleted over and over by the conformance suite.
  const empty = makeBlob('{}', mediaTypes.ociEmpty)
  for (let round = 0; round < 3; round++) {
    const session = await request(server, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
    t.equal(session.status, 202)
    const location = new URL(session.headers.get('location')!, server.url)
    location.searchParams.set('digest', empty.digest)
    const put = await fetch(location, { method: 'PUT', body: empty.bytes })
    t.equal(put.status, 201, `round ${round}: pushed`)
    await del(t, `/v2/${repo}/blobs/${empty.digest}`)
    t.equal(await status(`/v2/${repo}/blobs/${empty.digest}`, 'HEAD'), 404, `round ${round}: deleted`)
  }
})

t.test('blob deletion is per repository', async (t) => {
  const blob = randomBlob(321)
  await pushBlob(server, 'manage/repo1', blob)
  const mount = await request(server, `/v2/manage/repo2/blobs/uploads/?mount=${blob.digest}&from=manage/repo1`, { method: 'POST' })
  t.equal(mount.status, 201)
  await del(t, `/v2/manage/repo1/blobs/${blob.digest}`)
  t.equal(await status(`/v2/manage/repo1/blobs/${blob.digest}`, 'HEAD'), 404)
  t.equal(await status(`/v2/manage/repo2/blobs/${blob.digest}`), 200, 'the mounted copy stays')
  const remount = await request(server, `/v2/manage/repo3/blobs/uploads/?mount=${blob.digest}&from=manage/repo1`, { method: 'POST' })
  t.equal(remount.status, 202, 'a deleted blob cannot be mounted from there')
  await del(t, `/v2/manage/repo2/blobs/${blob.digest}`)
  t.equal(await status(`/v2/manage/repo2/blobs/${blob.digest}`, 'HEAD'), 404)
})

t.test('a manifest whose blob was deleted cannot be pushed again until the blob is back', async (t) => {
  const repo = 'manage/dangling'
  const image = await pushImage(server, repo)
  await del(t, `/v2/${repo}/manifests/${image.manifest.digest}`)
  await del(t, `/v2/${repo}/blobs/${image.layers[0]!.digest}`)
  const res = await request(server, `/v2/${repo}/manifests/latest`, {
    method: 'PUT',
    headers: { 'content-type': image.manifest.mediaType },
    body: image.manifest.bytes,
  })
  await expectError(t, res, 400, 'MANIFEST_BLOB_UNKNOWN')
  await pushBlob(server, repo, image.layers[0]!)
  t.equal((await pushManifest(server, repo, 'latest', image.manifest)).status, 201)
})

t.test('with deletes disabled every delete is 405 UNSUPPORTED', async (t) => {
  const srv = await startTestServer({ options: { deleteEnabled: false } })
  t.teardown(() => srv.close())
  const repo = 'manage/readonly'
  const image = await pushImage(srv, repo, 'latest')
  const paths = [
    `/v2/${repo}/manifests/latest`,
    `/v2/${repo}/manifests/${image.manifest.digest}`,
    `/v2/${repo}/blobs/${image.layers[0]!.digest}`,
    `/v2/${repo}/manifests/${randomDigest()}`,
  ]
  for (const path of paths) {
    await expectError(t, await request(srv, path, { method: 'DELETE' }), 405, 'UNSUPPORTED', path.split('/').slice(-2).join('/'))
  }
  t.equal(await status(`/v2/${repo}/manifests/latest`, 'GET', srv), 200, 'the tag is still there')
  t.equal(await status(`/v2/${repo}/blobs/${image.layers[0]!.digest}`, 'GET', srv), 200, 'the blob is still there')

  const session = await request(srv, `/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  const cancel = await request(srv, session.headers.get('location')!, { method: 'DELETE' })
  t.equal(cancel.status, 204, 'cancelling an upload is not a content delete')
  const manifest = imageManifest({ config: image.config, layers: image.layers })
  t.equal((await pushManifest(srv, repo, 'again', manifest)).status, 201, 'pushes still work')
})
