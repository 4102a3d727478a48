// Builds and reads OCI image layouts for end-to-end tests, offline: umoci makes single-platform
// images out of folders of random files; multi-platform indexes are written by hand, as the spec
// lays them out (blobs/sha256/<hex> plus an index.json entry named by the ref.name annotation).
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from './tools.js'

export const ociMediaTypes = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  refName: 'org.opencontainers.image.ref.name',
} as const

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  annotations?: Record<string, string>
  platform?: { architecture: string; os: string; variant?: string }
}

export interface ImageManifest {
  schemaVersion: number
  mediaType?: string
  config: Descriptor
  layers: Descriptor[]
}

export interface ImageIndex {
  schemaVersion: number
  mediaType?: string
  manifests: Descriptor[]
}

export interface ImageSpec {
  /** Sizes in bytes of the random file each layer adds (one layer per entry). */
  layerSizes: number[]
  architecture: string
  os?: string
}

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return `sha256:${hash.digest('hex')}`
}

export const blobPath = (layout: string, digest: string): string => {
  const [algorithm, hex] = digest.split(':')
  if (algorithm === undefined || hex === undefined) throw new Error(`not a digest: ${digest}`)
  return join(layout, 'blobs', algorithm, hex)
}

export async function initLayout(layout: string): Promise<void> {
  await run('umoci', ['init', '--layout', layout])
}

/** Adds image `tag` to the layout: one umoci layer per entry of layerSizes, then the platform. */
export async function buildImage(layout: string, tag: string, spec: ImageSpec, scratch: string): Promise<void> {
  const image = `${layout}:${tag}`
  await run('umoci', ['new', '--image', image])
  for (const [i, size] of spec.layerSizes.entries()) {
    const source = join(scratch, `${tag}-layer-${i}`)
    await mkdir(source, { recursive: true })
    await writeFile(join(source, `random-${i}.bin`), randomBytes(size))
    await run('umoci', ['insert', '--image', image, source, `/data/${tag}/${i}`])
    await rm(source, { recursive: true, force: true })
  }
  await run('umoci', [
    'config',
    '--image',
    image,
    '--architecture',
    spec.architecture,
    '--os',
    spec.os ?? 'linux',
    '--config.cmd',
    '/bin/true',
  ])
}

/** Removes blobs no longer referenced (umoci leaves every intermediate manifest and config behind). */
export async function gcLayout(layout: string): Promise<void> {
  await run('umoci', ['gc', '--layout', layout])
}

export async function readIndexJson(layout: string): Promise<ImageIndex> {
  return JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex
}

/** The index.json entry for `tag`. */
export async function tagDescriptor(layout: string, tag: string): Promise<Descriptor> {
  const index = await readIndexJson(layout)
  const found = index.manifests.find((d) => d.annotations?.[ociMediaTypes.refName] === tag)
  if (!found) throw new Error(`${layout} has no tag ${tag} (index.json: ${JSON.stringify(index)})`)
  return found
}

export const readBlob = (layout: string, digest: string): Promise<Buffer> => readFile(blobPath(layout, digest))

/** Writes `data` as a blob and returns its descriptor. */
export async function writeBlob(layout: string, mediaType: string, data: Buffer): Promise<Descriptor> {
  const digest = sha256(data)
  await writeFile(blobPath(layout, digest), data)
  return { mediaType, digest, size: data.length }
}

/**
 * Writes an OCI image index over the given (already present) manifests, each with its platform,
 * and tags it in index.json.
 */
export async function writeIndex(layout: string, tag: string, manifests: Descriptor[]): Promise<Descriptor> {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: ociMediaTypes.index,
    manifests: manifests.map(({ mediaType, digest, size, platform }) => ({ mediaType, digest, size, ...(platform ? { platform } : {}) })),
  }
  const descriptor = await writeBlob(layout, ociMediaTypes.index, Buffer.from(JSON.stringify(index, null, 2)))
  const top = await readIndexJson(layout)
  top.manifests = top.manifests.filter((d) => d.annotations?.[ociMediaTypes.refName] !== tag)
  top.manifests.push({ ...descriptor, annotations: { [ociMediaTypes.refName]: tag } })
  await writeFile(join(layout, 'index.json'), JSON.stringify(top))
  return descriptor
}

/** The platform an image's config declares, read from the layout. */
export async function imagePlatform(layout: string, manifest: ImageManifest): Promise<{ architecture: string; os: string }> {
  const config = JSON.parse((await readBlob(layout, manifest.config.digest)).toString('utf8')) as { architecture: string; os: string }
  return { architecture: config.architecture, os: config.os }
}
