import t from 'tap'
import { digestBytes } from '../../src/core/digest.js'
import { parseManifest } from '../../src/core/manifest.js'
import { mediaTypes } from '../../src/core/media-types.js'

const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestBytes(Buffer.from('{}')), size: 2 }
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestBytes(Buffer.from('layer')), size: 5 }
const bytes = (value: unknown) => Buffer.from(JSON.stringify(value))

t.test('image manifests list config and layers as required blobs', async (t) => {
  const parsed = parseManifest(
    bytes({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [layer] }),
    mediaTypes.ociManifest,
  )
  t.equal(parsed.mediaType, mediaTypes.ociManifest)
  t.same(
    parsed.blobs.map((b) => b.digest),
    [config.digest, layer.digest],
  )
  t.equal(parsed.artifactType, config.mediaType, 'artifactType falls back to the config media type')
})

t.test('media type comes from Content-Type, the document, or its shape', async (t) => {
  const doc = { schemaVersion: 2, config, layers: [] }
  t.equal(parseManifest(bytes(doc), '').mediaType, mediaTypes.ociManifest)
  t.equal(parseManifest(bytes({ schemaVersion: 2, manifests: [] }), 'application/json').mediaType, mediaTypes.ociIndex)
  t.equal(parseManifest(bytes({ ...doc, mediaType: mediaTypes.dockerManifest }), '').mediaType, mediaTypes.dockerManifest)
  t.equal(parseManifest(bytes(doc), `${mediaTypes.ociManifest}; charset=utf-8`).mediaType, mediaTypes.ociManifest)
  t.throws(() => parseManifest(bytes({ ...doc, mediaType: mediaTypes.dockerManifest }), mediaTypes.ociManifest), {
    code: 'MANIFEST_INVALID',
  })
  t.throws(() => parseManifest(bytes(doc), mediaTypes.dockerSchema1Signed), { code: 'MANIFEST_INVALID', status: 415 })
  t.throws(() => parseManifest(bytes({ ...doc, mediaType: 'application/x-unknown' }), ''), { code: 'MANIFEST_INVALID', status: 415 })
})

t.test('indexes list child manifests; subject and artifactType are read', async (t) => {
  const child = { mediaType: mediaTypes.ociManifest, digest: digestBytes(Buffer.from('m')), size: 1 }
  const parsed = parseManifest(
    bytes({
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      artifactType: 'x/y',
      manifests: [child],
      subject: child,
      annotations: { a: 'b' },
    }),
    mediaTypes.ociIndex,
  )
  t.same(
    parsed.manifests.map((m) => m.digest),
    [child.digest],
  )
  t.same(parsed.blobs, [])
  t.equal(parsed.subject?.digest, child.digest)
  t.equal(parsed.artifactType, 'x/y')
  t.same(parsed.annotations, { a: 'b' })
})

t.test('foreign and non-distributable layers with URLs are not required', async (t) => {
  const foreign = {
    mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
    digest: layer.digest,
    size: 5,
    urls: ['https://x'],
  }
  const nondist = {
    mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
    digest: layer.digest,
    size: 5,
    urls: ['https://x'],
  }
  const parsed = parseManifest(bytes({ schemaVersion: 2, config, layers: [foreign, nondist] }), mediaTypes.ociManifest)
  t.same(
    parsed.blobs.map((b) => b.digest),
    [config.digest],
  )
})

t.test('malformed manifests are MANIFEST_INVALID', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['not json', Buffer.from('{nope')],
    ['not an object', bytes([1, 2])],
    ['wrong schemaVersion', bytes({ schemaVersion: 1, config, layers: [] })],
    ['missing layers', bytes({ schemaVersion: 2, config })],
    ['bad digest', bytes({ schemaVersion: 2, config: { ...config, digest: 'sha256:x' }, layers: [] })],
    ['negative size', bytes({ schemaVersion: 2, config: { ...config, size: -1 }, layers: [] })],
    ['fractional size', bytes({ schemaVersion: 2, config: { ...config, size: 1.5 }, layers: [] })],
    ['layers not array', bytes({ schemaVersion: 2, config, layers: {} })],
    ['index without manifests', bytes({ schemaVersion: 2, mediaType: mediaTypes.ociIndex })],
    ['shapeless', bytes({ schemaVersion: 2 })],
  ]
  for (const [what, body] of cases) t.throws(() => parseManifest(body, ''), { code: 'MANIFEST_INVALID' }, what)
})
