// Hauler hauls for the bundle tests, built offline as Hauler's store lays them out (no hauler
// binary here; see src/bundle/hauler.ts for the layout and where it was confirmed): an OCI
// layout whose index.json names each entry by a host-less ref.name plus io.containerd.image.name
// and a `kind`, a two-platform index and a single image made with umoci, a cosign signature of
// the index and an attestation of one platform (same ref.name as the image), a file stored as
// an OCI artifact, Docker's manifest.json for the images, `tar -C store .` and zstd.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  buildImage,
  gcLayout,
  imagePlatform,
  initLayout,
  readBlob,
  readIndexJson,
  tagDescriptor,
  writeBlob,
  writeIndex,
  type Descriptor,
  type ImageManifest,
} from './oci-layout.js'
import { run } from './tools.js'

const KiB = 1024
const refName = 'org.opencontainers.image.ref.name'
const containerdName = 'io.containerd.image.name'

export interface Haul {
  /** The store folder (an OCI layout) and haul.tar.zst made of it. */
  store: string
  file: string
  index: { digest: string; bytes: Buffer }
  amd64: { digest: string; bytes: Buffer }
  tool: { digest: string; bytes: Buffer }
  signature: { digest: string; bytes: Buffer }
  attestation: { digest: string; bytes: Buffer }
  notes: { digest: string; bytes: Buffer; content: Buffer }
}

export const haulNames = { multi: 'gcr.io/x/multi:2.0', tool: 'ghcr.io/acme/tool:1.0', notes: 'hauler/notes.txt:latest' } as const

export interface HaulOptions {
  /** The `dev.cosignproject.cosign/…` kinds of older stores. */
  legacyKinds?: boolean
  /** No kinds at all, as the newest Hauler writes (what an entry is is told by its manifest). */
  noKinds?: boolean
  /** A `--containerd` haul: index.json holds the images only, hauler-index.json everything. */
  containerd?: boolean
}

export async function buildHaul(dir: string, options: HaulOptions = {}): Promise<Haul> {
  const store = join(dir, 'store')
  const scratch = join(dir, 'scratch')
  await initLayout(store)
  await buildImage(store, 'amd64', { layerSizes: [80 * KiB], architecture: 'amd64' }, scratch)
  await buildImage(store, 'arm64', { layerSizes: [48 * KiB], architecture: 'arm64' }, scratch)
  await buildImage(store, 'tool', { layerSizes: [32 * KiB, 4 * KiB], architecture: 'amd64' }, scratch)
  await gcLayout(store)
  const withPlatform = async (tag: string): Promise<Descriptor> => {
    const descriptor = await tagDescriptor(store, tag)
    const manifest = JSON.parse((await readBlob(store, descriptor.digest)).toString('utf8')) as ImageManifest
    return { ...descriptor, platform: await imagePlatform(store, manifest) }
  }
  const amd64 = await withPlatform('amd64')
  const index = await writeIndex(store, 'multi', [amd64, await withPlatform('arm64')])
  const tool = await tagDescriptor(store, 'tool')

  const empty = await writeBlob(store, 'application/vnd.oci.image.config.v1+json', Buffer.from('{}'))
  const cosign = async (subject: string, layerType: string, payload: object): Promise<Descriptor> => {
    const layer = await writeBlob(store, layerType, Buffer.from(JSON.stringify(payload)))
    const manifest = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: empty, layers: [layer] }
    layer.annotations = { 'dev.cosignproject.cosign/signature': `MEUCIQ-${subject.slice(7, 19)}` }
    return writeBlob(store, manifest.mediaType, Buffer.from(JSON.stringify(manifest)))
  }
  const signature = await cosign(index.digest, 'application/vnd.dev.cosign.simplesigning.v1+json', {
    critical: { image: { 'docker-manifest-digest': index.digest }, type: 'cosign container image signature' },
  })
  const attestation = await cosign(amd64.digest, 'application/vnd.dsse.envelope.v1+json', { payloadType: 'application/vnd.in-toto+json' })

  const content = Buffer.from('air-gapped notes\n')
  const fileLayer = await writeBlob(store, 'application/vnd.content.hauler.file.layer.v1', content)
  fileLayer.annotations = { 'org.opencontainers.image.title': 'notes.txt' }
  const fileConfig = await writeBlob(store, 'application/vnd.content.hauler.file.local.config.v1+json', Buffer.from('{"kind":"file"}'))
  const fileManifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: fileConfig,
    layers: [fileLayer],
  }
  const notes = await writeBlob(store, fileManifest.mediaType, Buffer.from(JSON.stringify(fileManifest)))

  const prefix = options.legacyKinds === true ? 'dev.cosignproject.cosign' : 'dev.hauler'
  const kind = (value: string): Record<string, string> => (options.noKinds === true ? {} : { kind: `${prefix}/${value}` })
  const image = (name: string, host: string): Record<string, string> => ({ [refName]: name, [containerdName]: `${host}/${name}` })
  const entries: Descriptor[] = [
    { ...index, annotations: { ...kind('imageIndex'), ...image('x/multi:2.0', 'gcr.io') } },
    { ...tool, annotations: { ...kind('image'), ...image('acme/tool:1.0', 'ghcr.io') } },
    { ...signature, annotations: { ...kind('sigs'), ...image('x/multi:2.0', 'gcr.io') } },
    {
      ...attestation,
      annotations: {
        ...kind(`atts/${amd64.digest.slice(7)}`),
        ...image('x/multi:2.0', 'gcr.io'),
        'hauler.dev/subject-digest': amd64.digest,
      },
    },
    { ...notes, annotations: { ...kind('image'), [refName]: haulNames.notes } },
  ]
  const layoutIndex = await readIndexJson(store)
  await writeFile(
    join(store, 'index.json'),
    JSON.stringify({ ...layoutIndex, manifests: options.containerd ? entries.slice(0, 2) : entries }),
  )
  if (options.containerd === true) await writeFile(join(store, 'hauler-index.json'), JSON.stringify({ ...layoutIndex, manifests: entries }))
  const path = (digest: string): string => `blobs/sha256/${digest.slice('sha256:'.length)}`
  const saved = async (digest: string, tags: string[]) => {
    const manifest = JSON.parse((await readBlob(store, digest)).toString('utf8')) as ImageManifest
    return { Config: path(manifest.config.digest), RepoTags: tags, Layers: manifest.layers.map((l) => path(l.digest)) }
  }
  await writeFile(
    join(store, 'manifest.json'),
    JSON.stringify([await saved(amd64.digest, ['gcr.io/x/multi:2.0']), await saved(tool.digest, [])]),
  )
  await writeFile(join(store, 'store.json'), '{"store-id":"0b6f3c1e-8f1a-4c56-9d7e-1f2a3b4c5d6e"}')
  await mkdir(dir, { recursive: true })
  const file = join(dir, 'haul.tar.zst')
  await run('sh', ['-c', `tar -C "${store}" -cf - . | zstd -q -c > "${file}"`])
  const bytesOf = async (d: Descriptor) => ({ digest: d.digest, bytes: await readBlob(store, d.digest) })
  return {
    store,
    file,
    index: await bytesOf(index),
    amd64: await bytesOf(amd64),
    tool: await bytesOf(tool),
    signature: await bytesOf(signature),
    attestation: await bytesOf(attestation),
    notes: { ...(await bytesOf(notes)), content },
  }
}
