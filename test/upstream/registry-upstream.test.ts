// RegistryUpstream against a real CNCF distribution: what the proxy relies on, byte for byte.
import { randomBytes } from 'node:crypto'
import { text } from 'node:stream/consumers'
import t, { type Test } from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { mediaTypes } from '../../src/core/media-types.js'
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { pushManifest, seedImage, seedIndex, sha256 } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const registry = skip ? undefined : await startDistribution()
t.teardown(() => registry?.stop())
const url = registry?.url ?? ''

function upstream(t: Test, options: { tagPageSize?: number } = {}): RegistryUpstream {
  const u = new RegistryUpstream({ name: 'test-upstream', url, ...options })
  t.teardown(() => u.close())
  return u
}

t.test('resolve: HEAD answers digest, size and type; 404 for unknown tags and repositories', async (t) => {
  const image = await seedImage(url, 'team/app', 'v1')
  const u = upstream(t)
  t.same(await u.resolve('team/app', 'v1'), { digest: image.manifest.digest, mediaType: mediaTypes.ociManifest, size: image.manifest.size })
  t.same(await u.resolve('team/app', image.manifest.digest), {
    digest: image.manifest.digest,
    mediaType: mediaTypes.ociManifest,
    size: image.manifest.size,
  })
  t.equal(await u.resolve('team/app', 'nope'), undefined)
  t.equal(await u.resolve('no/such-repo', 'v1'), undefined)
  t.equal(await u.resolve('team/app', sha256('missing')), undefined)
  const reads = (await registry!.loggedRequests()).filter((r) => r.path === '/v2/team/app/manifests/v1' && r.method !== 'PUT')
  t.same(
    reads.map((r) => r.method),
    ['HEAD'],
    'resolve is a HEAD, not a GET',
  )
})

t.test('resolve forwards the Accept list: distribution 2.8 hides an OCI index from a Docker-only Accept', async (t) => {
  const a = await seedImage(url, 'multi/arch', 'a', { untagged: true })
  const b = await seedImage(url, 'multi/arch', 'b', { untagged: true })
  const index = await seedIndex(url, 'multi/arch', 'latest', [a, b])
  const u = upstream(t)
  t.same(
    await u.resolve('multi/arch', 'latest'),
    { digest: index.digest, mediaType: mediaTypes.ociIndex, size: index.size },
    'default Accept lists every type',
  )
  t.same(await u.resolve('multi/arch', 'latest', { accept: [mediaTypes.ociIndex, mediaTypes.ociManifest] }), {
    digest: index.digest,
    mediaType: mediaTypes.ociIndex,
    size: index.size,
  })
  // distribution answers MANIFEST_UNKNOWN (404) when the stored type is an OCI index and the
  // Accept list lacks it, rather than down-converting: to the proxy that reads as "not found".
  t.equal(await u.resolve('multi/arch', 'latest', { accept: [mediaTypes.dockerManifest] }), undefined)
  // A Docker manifest list is served as is to a client that accepts Docker schema 2.
  const list = await seedIndex(url, 'multi/arch', 'docker-list', [a, b], { format: 'docker' })
  t.same(await u.resolve('multi/arch', 'docker-list', { accept: [mediaTypes.dockerManifestList, mediaTypes.dockerManifest] }), {
    digest: list.digest,
    mediaType: mediaTypes.dockerManifestList,
    size: list.size,
  })
})

t.test('getManifest returns the exact bytes, by tag and by digest', async (t) => {
  const image = await seedImage(url, 'exact/bytes', 'v1', { format: 'docker' })
  const u = upstream(t)
  for (const reference of ['v1', image.manifest.digest]) {
    const manifest = await u.getManifest('exact/bytes', reference)
    t.ok(manifest, reference)
    t.ok(manifest!.bytes.equals(image.manifest.bytes), 'byte-exact (indented JSON kept)')
    t.equal(manifest!.digest, image.manifest.digest)
    t.equal(manifest!.size, image.manifest.size)
    t.equal(manifest!.mediaType, mediaTypes.dockerManifest)
  }
  t.equal(await u.getManifest('exact/bytes', 'missing'), undefined)
  t.equal(await u.getManifest('exact/bytes', sha256('missing')), undefined)
})

t.test('statBlob and openBlob: whole blob, a range (206), 404', async (t) => {
  const layer = randomBytes(100_000)
  const image = await seedImage(url, 'blobs/repo', 'v1', { layers: [layer] })
  const digest = image.layers[0]!.digest as Digest
  const u = upstream(t)
  t.same(await u.statBlob('blobs/repo', digest), { size: layer.length })
  t.equal(await u.statBlob('blobs/repo', sha256('missing') as Digest), undefined)

  const whole = await u.openBlob('blobs/repo', digest)
  t.equal(whole!.size, layer.length)
  t.equal(whole!.range, undefined)
  t.ok(Buffer.concat(await whole!.stream.toArray()).equals(layer))

  const part = await u.openBlob('blobs/repo', digest, { range: { start: 10, end: 4_009 } })
  t.equal(part!.size, layer.length, 'size is the whole blob')
  t.same(part!.range, { start: 10, end: 4_009 })
  t.ok(Buffer.concat(await part!.stream.toArray()).equals(layer.subarray(10, 4_010)))

  t.equal(await u.openBlob('blobs/repo', sha256('missing') as Digest), undefined)
  await t.rejects(u.openBlob('blobs/repo', digest, { range: { start: layer.length + 5, end: layer.length + 10 } }), {
    code: 'RANGE_INVALID',
  })

  const config = await u.openBlob('blobs/repo', image.config.digest as Digest)
  t.equal(await text(config!.stream), image.config.bytes.toString())
})

t.test('listTags: every tag in one answer (distribution 2.8 ignores n on tags/list), 404 for an unknown repository', async (t) => {
  const tags = ['a1', 'a2', 'b1', 'b2', 'c1', 'c2', 'd1']
  const image = await seedImage(url, 'many/tags', tags[0]!)
  for (const tag of tags.slice(1)) await pushManifest(url, 'many/tags', tag, image.manifest.bytes, image.manifest.mediaType)
  // distribution lists tags in storage order, not sorted: the proxy sorts when it merges.
  t.same((await upstream(t, { tagPageSize: 3 }).listTags('many/tags'))?.sort(), tags)
  t.equal(await upstream(t).listTags('no/such-repo'), undefined)
})

t.test('invalid names never reach the upstream', async (t) => {
  const u = upstream(t)
  await t.rejects(u.resolve('../etc', 'v1'), { code: 'NAME_INVALID' })
  await t.rejects(u.getManifest('ok/name', 'bad tag!'), { code: 'TAG_INVALID' })
})
