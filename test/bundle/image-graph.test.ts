// The image graph over hand-written manifests: platform filters rewrite an index keeping its other
// fields, --single-manifest picks one child, sizes count each blob once; and the small parsers the
// bundle commands share (references, platforms, compression by name, reference lists).
import t from 'tap'
import { digestBytes, type Digest } from '../../src/core/digest.js'
import { compressionForName } from '../../src/bundle/compress.js'
import { parsePlatform, resolveImage } from '../../src/bundle/image-graph.js'
import { parseImageRef } from '../../src/bundle/image-ref.js'
import type { FetchedManifest } from '../../src/bundle/registry-source.js'
import { listFile } from '../../src/cli/bundle.js'

const manifests = new Map<string, FetchedManifest>()
const put = (document: unknown, mediaType: string): FetchedManifest => {
  const bytes = Buffer.from(JSON.stringify(document))
  const manifest = { digest: digestBytes(bytes), mediaType, bytes }
  manifests.set(manifest.digest, manifest)
  return manifest
}
const blob = (n: number, size: number) => ({
  mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`,
  size,
})
const config = (n: number) => ({ ...blob(n, 100), mediaType: 'application/vnd.oci.image.config.v1+json' })
const shared = blob(9, 1000)
const image = (n: number) =>
  put(
    { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: config(n), layers: [shared, blob(n + 4, 50)] },
    'application/vnd.oci.image.manifest.v1+json',
  )
const amd64 = image(1)
const arm64 = image(2)
const index = put(
  {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { mediaType: amd64.mediaType, digest: amd64.digest, size: amd64.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
      {
        mediaType: arm64.mediaType,
        digest: arm64.digest,
        size: arm64.bytes.length,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
    ],
    annotations: { 'org.example': 'kept' },
  },
  'application/vnd.oci.image.index.v1+json',
)
const fetch = async (digest: Digest): Promise<FetchedManifest> => manifests.get(digest)!

t.test('a whole index keeps its bytes; sizes count the shared layer once', async (t) => {
  const resolved = await resolveImage(index, fetch)
  t.equal(resolved.root.digest, index.digest)
  t.same(
    resolved.manifests.map((m) => m.digest),
    [amd64.digest, arm64.digest, index.digest],
    'children first',
  )
  t.equal(resolved.blobs.length, 5, 'two configs, the shared layer once, two own layers')
  t.equal(resolved.tree.size, index.bytes.length + amd64.bytes.length + arm64.bytes.length + 1000 + 2 * 100 + 2 * 50)
  t.same(
    resolved.tree.children?.map((c) => c.platform),
    ['linux/amd64', 'linux/arm64/v8'],
  )
})

t.test('a platform filter rewrites the index, keeping its other fields; a variant matches only when asked', async (t) => {
  const resolved = await resolveImage(index, fetch, { platforms: [parsePlatform('linux/arm64')] })
  t.not(resolved.root.digest, index.digest)
  const document = JSON.parse(resolved.root.bytes.toString('utf8')) as { manifests: Array<{ digest: string }>; annotations: unknown }
  t.same(
    document.manifests.map((m) => m.digest),
    [arm64.digest],
  )
  t.same(document.annotations, { 'org.example': 'kept' })
  t.equal(resolved.root.digest, digestBytes(resolved.root.bytes))
  await t.rejects(
    resolveImage(index, fetch, { platforms: [parsePlatform('linux/arm64/v7')] }),
    /has none of linux\/arm64\/v7 \(it has linux\/amd64, linux\/arm64\/v8\)/,
  )
  const both = await resolveImage(index, fetch, { platforms: [parsePlatform('linux/arm64'), parsePlatform('linux/amd64')] })
  t.equal(both.root.digest, index.digest, 'every platform kept: the original bytes')
})

t.test('--single-manifest resolves to the platform manifest', async (t) => {
  const resolved = await resolveImage(index, fetch, { platforms: [parsePlatform('linux/arm64')], singleManifest: true })
  t.equal(resolved.root.digest, arm64.digest)
  t.same(
    resolved.manifests.map((m) => m.digest),
    [arm64.digest],
  )
  await t.rejects(
    resolveImage(index, fetch, { platforms: [parsePlatform('windows/amd64')], singleManifest: true }),
    /no windows\/amd64 manifest/,
  )
})

t.test('references, platforms, compression names, reference lists', async (t) => {
  t.same(parseImageRef('ubuntu'), {
    text: 'docker.io/library/ubuntu:latest',
    domain: 'docker.io',
    repository: 'library/ubuntu',
    tag: 'latest',
  })
  t.equal(parseImageRef('127.0.0.1:5000/x/y@sha256:' + 'a'.repeat(64)).tag, undefined)
  t.throws(() => parseImageRef('Upper/Case'), /not an image reference/)
  t.throws(() => parsePlatform('linux'), /not a platform/)
  t.same(['a.tar', 'a.tar.gz', 'a.tgz', 'a.tar.zst', 'a.tar.xz'].map(compressionForName), ['none', 'gzip', 'gzip', 'zstd', 'xz'])
  t.same(listFile('# images\ngcr.io/x/a:1 # the app\n\n  gcr.io/x/b:2\n'), ['gcr.io/x/a:1', 'gcr.io/x/b:2'])
})
