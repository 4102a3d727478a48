// Content discovery over HTTP against a real server (conformance 03_discovery + checklist §5):
// tags/list with pagination, _catalog, referrers.
import t from 'tap'
import type { Test } from 'tap'
import { freshServer, startTestServer, type TestServer } from '../helpers/server.js'
import {
  expectError,
  imageIndex,
  imageManifest,
  makeBlob,
  mediaTypes,
  pushBlob,
  pushImage,
  pushManifest,
  randomBlob,
  randomDigest,
  request,
  type Image,
  type Manifest,
} from '../helpers/oci.js'

let server: TestServer
t.before(async () => {
  server = await startTestServer()
})
t.teardown(() => server?.close())

async function tagsOf(
  path: string,
  srv = server,
): Promise<{ status: number; link: string | null; body: { name?: string; tags?: string[] } }> {
  const res = await request(srv, path)
  return { status: res.status, link: res.headers.get('link'), body: (await res.json()) as { name?: string; tags?: string[] } }
}

/** Pushes one image and points every tag at it. */
async function tagImage(repo: string, tags: string[]): Promise<Image> {
  const image = await pushImage(server, repo)
  for (const tag of tags) await pushManifest(server, repo, tag, image.manifest)
  return image
}

t.test('tags/list answers every tag in byte order', async (t) => {
  const repo = 'conformance/discovery'
  const tags = ['test0', 'test1', 'test2', 'test3', 'TEST0', 'TEST1', 'TEST2', 'TEST3', 'tagtest0', 'v1.0_rc-2']
  await tagImage(repo, tags)
  const all = await tagsOf(`/v2/${repo}/tags/list`)
  t.equal(all.status, 200)
  t.equal(all.link, null, 'no Link without n')
  t.same(all.body, { name: repo, tags: [...tags].sort() })
  t.same(all.body.tags, ['TEST0', 'TEST1', 'TEST2', 'TEST3', 'tagtest0', 'test0', 'test1', 'test2', 'test3', 'v1.0_rc-2'])

  const half = await tagsOf(`/v2/${repo}/tags/list?n=5`)
  t.same(half.body.tags, ['TEST0', 'TEST1', 'TEST2', 'TEST3', 'tagtest0'], 'exactly n tags')
  t.equal(half.link, `</v2/${repo}/tags/list?n=5&last=tagtest0>; rel="next"`)

  const rest = await tagsOf(`/v2/${repo}/tags/list?n=5&last=tagtest0`)
  t.same(rest.body.tags, ['test0', 'test1', 'test2', 'test3', 'v1.0_rc-2'], 'last is exclusive')
  t.equal(rest.link, null, 'no Link once nothing follows')

  const lastOnly = await tagsOf(`/v2/${repo}/tags/list?last=test1`)
  t.same(lastOnly.body.tags, ['test2', 'test3', 'v1.0_rc-2'], 'last without n: everything after it')
  t.equal(lastOnly.link, null)
  const between = await tagsOf(`/v2/${repo}/tags/list?last=TEST9`)
  t.same(between.body.tags?.[0], 'tagtest0', 'a last that is no tag still orders by bytes')
  const beyond = await tagsOf(`/v2/${repo}/tags/list?last=zzz`)
  t.same(beyond.body.tags, [])

  const zero = await tagsOf(`/v2/${repo}/tags/list?n=0`)
  t.equal(zero.status, 200)
  t.same(zero.body.tags, [], 'n=0 is an empty list')
  t.equal(zero.link, null, 'and has no Link')
  const many = await tagsOf(`/v2/${repo}/tags/list?n=1000`)
  t.equal(many.body.tags?.length, tags.length)
  t.equal(many.link, null)
})

t.test('following Link walks every page', async (t) => {
  const repo = 'discovery/pages'
  await tagImage(repo, ['a', 'b', 'c', 'd', 'e'])
  const first = await tagsOf(`/v2/${repo}/tags/list?n=2`)
  t.same(first.body.tags, ['a', 'b'])
  t.equal(first.link, `</v2/${repo}/tags/list?n=2&last=b>; rel="next"`)
  const seen = [...(first.body.tags ?? [])]
  let link = first.link
  while (link) {
    const next = /^<([^>]+)>; rel="next"$/.exec(link)?.[1]
    t.ok(next, `a well-formed Link: ${link}`)
    const page = await tagsOf(next!)
    seen.push(...(page.body.tags ?? []))
    link = page.link
  }
  t.same(seen, ['a', 'b', 'c', 'd', 'e'])
  const exact = await tagsOf(`/v2/${repo}/tags/list?n=3&last=b`)
  t.same(exact.body.tags, ['c', 'd', 'e'])
  t.equal(exact.link, null, 'a page that ends the list has no Link')
})

t.test('tags/list errors and edge cases', async (t) => {
  await expectError(t, await request(server, '/v2/never/pushed/tags/list'), 404, 'NAME_UNKNOWN', 'unknown repository')
  const started = await request(server, '/v2/discovery/upload-only/blobs/uploads/', { method: 'POST' })
  t.equal(started.status, 202)
  await expectError(
    t,
    await request(server, '/v2/discovery/upload-only/tags/list'),
    404,
    'NAME_UNKNOWN',
    'a repository with only an upload in progress',
  )
  await pushBlob(server, 'discovery/blob-only', randomBlob(5))
  const blobOnly = await tagsOf('/v2/discovery/blob-only/tags/list')
  t.same(blobOnly, { status: 200, link: null, body: { name: 'discovery/blob-only', tags: [] } }, 'a repository with blobs only')
  for (const n of ['-1', 'abc', '1.5', '1e3']) {
    await expectError(t, await request(server, `/v2/conformance/discovery/tags/list?n=${n}`), 400, 'PAGINATION_NUMBER_INVALID', `n=${n}`)
  }
  const repo = 'discovery/untagged'
  await pushImage(server, repo)
  const untagged = await tagsOf(`/v2/${repo}/tags/list`)
  t.equal(untagged.status, 200, 'a repository with manifests but no tags')
  t.same(untagged.body, { name: repo, tags: [] })
})

t.test('_catalog lists repositories with manifests, paginated', async (t) => {
  const srv = await freshServer(t)
  const repos = ['alpha', 'alpha/nested', 'beta/one', 'gamma']
  for (const repo of repos) await pushImage(srv, repo, 'latest')
  await pushBlob(srv, 'blobs-only', randomBlob(10))
  const res = await request(srv, '/v2/_catalog')
  t.equal(res.status, 200)
  t.equal(res.headers.get('link'), null)
  t.same(await res.json(), { repositories: repos }, 'sorted, without repositories that only hold blobs')

  const first = await request(srv, '/v2/_catalog?n=2')
  t.same(await first.json(), { repositories: ['alpha', 'alpha/nested'] })
  t.equal(first.headers.get('link'), `</v2/_catalog?n=2&last=alpha%2Fnested>; rel="next"`)
  const second = await request(srv, '/v2/_catalog?n=2&last=alpha%2Fnested')
  t.same(await second.json(), { repositories: ['beta/one', 'gamma'] })
  t.equal(second.headers.get('link'), null)
  const zero = await request(srv, '/v2/_catalog?n=0')
  t.same(await zero.json(), { repositories: [] })
  t.equal(zero.headers.get('link'), null)
  await expectError(t, await request(srv, '/v2/_catalog?n=x'), 400, 'PAGINATION_NUMBER_INVALID')

  const empty = await freshServer(t)
  const none = await request(empty, '/v2/_catalog')
  t.same(await none.json(), { repositories: [] }, 'an empty registry')
})

interface IndexBody {
  schemaVersion: number
  mediaType: string
  manifests: Array<Record<string, unknown>>
}

async function referrers(t: Test, path: string): Promise<{ res: Response; body: IndexBody }> {
  const res = await request(server, path)
  t.equal(res.headers.get('content-type'), mediaTypes.ociIndex, `${path}: Content-Type is exactly the index type`)
  return { res, body: (await res.json()) as IndexBody }
}

t.test('referrers of an unknown repository or subject are an empty index', async (t) => {
  for (const path of [`/v2/never/pushed/referrers/${randomDigest()}`, `/v2/conformance/discovery/referrers/${randomDigest('sha512')}`]) {
    const { res, body } = await referrers(t, path)
    t.equal(res.status, 200, path)
    t.same(body, { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] })
    t.equal(res.headers.get('oci-filters-applied'), null)
  }
  const filtered = await referrers(t, `/v2/never/pushed/referrers/${randomDigest()}?artifactType=application/x`)
  t.equal(filtered.res.status, 200)
  t.equal(filtered.res.headers.get('oci-filters-applied'), 'artifactType')
  await expectError(t, await request(server, '/v2/conformance/discovery/referrers/sha256:notadigest'), 400, 'DIGEST_INVALID')
  await expectError(t, await request(server, '/v2/conformance/discovery/referrers/latest'), 400, 'DIGEST_INVALID', 'a tag')
})

t.test('referrers list artifacts and indexes that name the subject', async (t) => {
  const repo = 'conformance/referrers'
  const subject = await pushImage(server, repo, 'subject')
  const bagel = 'application/vnd.nhl.peanut.butter.bagel'
  const emptyConfig = makeBlob('{}', mediaTypes.ociEmpty)
  const bagelConfig = makeBlob('{"bagel":true}', bagel)
  const layer = randomBlob(50)
  for (const blob of [emptyConfig, bagelConfig, layer]) await pushBlob(server, repo, blob)

  const annotations = (name: string) => ({ 'org.opencontainers.image.description': name })
  // Artifact type from the config's mediaType, from artifactType, and two index variants.
  const fromConfig = imageManifest({
    config: bagelConfig,
    layers: [layer],
    subject: subject.manifest,
    annotations: annotations('from config'),
  })
  const explicit = imageManifest({
    config: emptyConfig,
    layers: [emptyConfig],
    artifactType: 'application/vnd.example.sig',
    subject: subject.manifest,
    annotations: annotations('explicit'),
  })
  const index = imageIndex({ manifests: [fromConfig], artifactType: bagel, subject: subject.manifest, annotations: annotations('index') })
  const plainIndex = imageIndex({ manifests: [], subject: subject.manifest })
  const unrelated = imageManifest({
    config: bagelConfig,
    layers: [layer],
    subject: { mediaType: mediaTypes.ociManifest, digest: randomDigest(), size: 5 },
  })
  for (const manifest of [fromConfig, explicit, index, plainIndex, unrelated]) {
    const res = await pushManifest(server, repo, manifest.digest, manifest)
    t.equal(res.headers.get('oci-subject'), (manifest.json.subject as { digest: string }).digest)
  }

  const { res, body } = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}`)
  t.equal(res.status, 200)
  t.equal(body.schemaVersion, 2)
  t.equal(body.mediaType, mediaTypes.ociIndex)
  const byDigest = new Map(body.manifests.map((d) => [d.digest as string, d]))
  t.equal(body.manifests.length, 4, 'every referrer and nothing else')
  const expect = (manifest: Manifest, artifactType: string | undefined, description: string | undefined) => {
    const expected: Record<string, unknown> = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size }
    if (artifactType !== undefined) expected.artifactType = artifactType
    if (description !== undefined) expected.annotations = annotations(description)
    t.same(byDigest.get(manifest.digest), expected, `descriptor of ${description ?? 'the plain index'}`)
  }
  expect(fromConfig, bagel, 'from config')
  expect(explicit, 'application/vnd.example.sig', 'explicit')
  expect(index, bagel, 'index')
  expect(plainIndex, undefined, undefined)

  const filtered = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}?artifactType=${encodeURIComponent(bagel)}`)
  t.equal(filtered.res.headers.get('oci-filters-applied'), 'artifactType')
  t.same(filtered.body.manifests.map((d) => d.digest).sort(), [fromConfig.digest, index.digest].sort())
  const none = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}?artifactType=application/none`)
  t.same(none.body.manifests, [])
  const unfiltered = await request(server, `/v2/${repo}/referrers/${subject.manifest.digest}?artifactType=`)
  t.equal(unfiltered.headers.get('oci-filters-applied'), null, 'an empty filter is no filter')
  t.equal(((await unfiltered.json()) as IndexBody).manifests.length, 4)

  const dangling = await referrers(t, `/v2/${repo}/referrers/${(unrelated.json.subject as { digest: string }).digest}`)
  t.same(
    dangling.body.manifests.map((d) => d.digest),
    [unrelated.digest],
    'a subject never pushed still lists its referrer',
  )
  const otherRepo = await referrers(t, `/v2/conformance/discovery/referrers/${subject.manifest.digest}`)
  t.same(otherRepo.body.manifests, [], 'referrers are per repository')

  const del = await request(server, `/v2/${repo}/manifests/${explicit.digest}`, { method: 'DELETE' })
  t.equal(del.status, 202)
  const after = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}`)
  t.same(
    after.body.manifests.map((d) => d.digest).sort(),
    [fromConfig.digest, index.digest, plainIndex.digest].sort(),
    'a deleted referrer is gone',
  )

  const subjectDelete = await request(server, `/v2/${repo}/manifests/${subject.manifest.digest}`, { method: 'DELETE' })
  t.equal(subjectDelete.status, 202, 'a subject may be deleted while referrers exist')
  const orphaned = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}`)
  t.equal(orphaned.body.manifests.length, 3, 'its referrers are still listed')
})

t.test('sha512 subjects and referrers', async (t) => {
  const repo = 'discovery/sha512'
  const subject = await pushImage(server, repo, undefined, { algorithm: 'sha512' })
  t.match(subject.manifest.digest, /^sha512:/)
  const config = makeBlob('{}', mediaTypes.ociEmpty)
  await pushBlob(server, repo, config)
  const artifact = imageManifest({
    config,
    layers: [config],
    artifactType: 'application/vnd.example',
    subject: subject.manifest,
    algorithm: 'sha512',
  })
  const res = await pushManifest(server, repo, artifact.digest, artifact)
  t.equal(res.headers.get('oci-subject'), subject.manifest.digest)
  const { body } = await referrers(t, `/v2/${repo}/referrers/${subject.manifest.digest}`)
  t.same(body.manifests, [
    { mediaType: mediaTypes.ociManifest, digest: artifact.digest, size: artifact.size, artifactType: 'application/vnd.example' },
  ])
})
