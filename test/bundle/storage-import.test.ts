// The server import's write path (StorageSink under BundlePush, as import-jobs.ts runs it) over a
// real filesystem registry: a blob whose commit fails after its bytes were written and verified,
// while the bundle reads on into the next blob, fails its image (never tagged) and only its image.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pack } from 'tar-stream'
import t from 'tap'
import { BundlePush } from '../../src/bundle/importer.js'
import { StorageSink } from '../../src/bundle/storage-sink.js'
import type { Digest } from '../../src/core/digest.js'
import type { RepositoryName } from '../../src/core/reference.js'
import { FilesystemDriver } from '../../src/storage/driver/filesystem.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'

const hex = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')
const digest = (bytes: Buffer): Digest => `sha256:${hex(bytes)}` as Digest

interface Image {
  name: string
  layer: Buffer
  config: Buffer
  manifest: Buffer
}

function image(name: string, layer: Buffer): Image {
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${hex(layer)}`] } }),
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${hex(config)}`, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${hex(layer)}`, size: layer.length }],
    }),
  )
  return { name, layer, config, manifest }
}

/** An OCI-layout tar: the layers first (in the given order), then configs and manifests, index.json last. */
async function bundle(images: Image[]): Promise<Buffer> {
  const tar = pack()
  const collected = (async () => {
    const chunks: Buffer[] = []
    for await (const chunk of tar as AsyncIterable<Buffer>) chunks.push(chunk)
    return Buffer.concat(chunks)
  })()
  const add = (name: string, bytes: Buffer): void => void tar.entry({ name }, bytes)
  add('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'))
  for (const { layer } of images) add(`blobs/sha256/${hex(layer)}`, layer)
  for (const { config, manifest } of images) {
    add(`blobs/sha256/${hex(config)}`, config)
    add(`blobs/sha256/${hex(manifest)}`, manifest)
  }
  const manifests = images.map(({ name, manifest }) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${hex(manifest)}`,
    size: manifest.length,
    annotations: { 'org.opencontainers.image.ref.name': name },
  }))
  add('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })))
  tar.finalize()
  return collected
}

/** Two images whose blobs all differ in their first two hex digits (the blob store's folder). */
function twoImages(): [Image, Image] {
  for (;;) {
    const images: [Image, Image] = [
      image('example.com/team/broken:1.0', Buffer.concat([Buffer.from('layer-a'), randomBytes(256 * 1024)])),
      image('example.com/team/fine:1.0', Buffer.concat([Buffer.from('layer-b'), randomBytes(256 * 1024)])),
    ]
    const prefixes = images.flatMap((i) => [i.layer, i.config, i.manifest].map((b) => hex(b).slice(0, 2)))
    if (new Set(prefixes).size === prefixes.length) return images
  }
}

t.test('a blob whose commit fails while the next is read fails its image only, untagged', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-storage-import-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const [broken, fine] = twoImages()
  // A file where the blob store needs the folder of the first layer: its bytes are written to
  // the upload and verified, then moving them to their content address fails.
  await mkdir(join(root, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(root, 'blobs', 'sha256', hex(broken.layer).slice(0, 2)), 'in the way')
  const registry = new LocalRegistry(new FilesystemDriver(root))
  const logged: unknown[] = []
  const sink = new StorageSink(registry, { staging: 'site/ferry-bundle-staging', onStorageError: (err) => logged.push(err) })
  const push = new BundlePush({
    source: { stream: Readable.from([await bundle([broken, fine])]), label: 'bundle' },
    namespace: 'site',
    sink,
    concurrency: 4,
    keepGoing: true,
  })
  const report = await push.run()

  t.equal(report.fatal, undefined, 'the run goes on')
  const byName = new Map(report.images.map((i) => [i.destination, i]))
  const failed = byName.get('site/team/broken:1.0')
  t.equal(failed?.status, 'failed', 'the image of the blob that was not stored fails')
  t.match(failed?.error, `blobs/sha256/${hex(broken.layer)}`, 'its error names the blob in the bundle')
  t.match(
    failed?.error,
    `${digest(broken.layer)} could not be stored: a file in the storage is where a folder must be (ENOTDIR)`,
    'and why',
  )
  t.notMatch(failed?.error, root, "but not the server's storage paths")
  t.match(String(logged[0]), root, 'which the server log gets')
  t.equal(byName.get('site/team/fine:1.0')?.status, 'pushed', 'the other image lands')

  const tag = (repo: string) => registry.repository(repo as RepositoryName).tags.resolve('1.0')
  t.equal(await tag('site/team/broken'), undefined, 'nothing is tagged for the failed image')
  t.equal((await tag('site/team/fine'))?.digest, `sha256:${hex(fine.manifest)}`, 'the other image is tagged')
  t.notOk(sink.staged().includes(digest(broken.layer)), 'the blob that failed is not counted as staged')
  t.ok(sink.staged().includes(digest(fine.layer)), 'the blob that was stored is')
})
