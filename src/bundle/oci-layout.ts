// OCI image layout folders: writing one image into a folder (`ferry pull`), merged with what the
// folder holds already, and reading an image back out of one (`ferry extract`).
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { digestBytes, tryParseDigest, type Digest } from '../core/digest.js'
import type { Descriptor } from '../core/manifest.js'
import { mediaTypes } from '../core/media-types.js'
import { blobName, containerdNameAnnotation, referrerEntries, refNameAnnotation, type ImageToWrite } from './bundle-writer.js'
import { resolveImage, type ResolveOptions, type ResolvedImage } from './image-graph.js'
import { Limiter } from './limiter.js'
import { mediaTypeOf, verifying, type FetchedManifest } from './registry-source.js'

interface IndexJson {
  schemaVersion: number
  mediaType?: string
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>
}

/** Writes `image` into the layout folder `dir` (created if need be), tagged `reference` in index.json. */
export async function writeLayout(dir: string, image: ImageToWrite, concurrency: number): Promise<void> {
  const graphs = [image.image, ...(image.referrers ?? [])]
  const manifests = graphs.flatMap((graph) => graph.manifests)
  const seen = new Set<string>(manifests.map((m) => m.digest))
  const blobs = graphs.flatMap((graph) => graph.blobs).filter((d) => !seen.has(d.digest) && seen.add(d.digest))
  const algorithms = new Set([...manifests, ...blobs].map((d) => blobName(d.digest).split('/')[1]!))
  for (const algorithm of algorithms) await mkdir(join(dir, 'blobs', algorithm), { recursive: true })
  const limiter = new Limiter(concurrency)
  await Promise.all(
    blobs.map((descriptor) =>
      limiter.run(async () => {
        const path = join(dir, blobName(descriptor.digest))
        if ((await stat(path).catch(() => undefined))?.size === descriptor.size) return
        const partial = `${path}.partial`
        try {
          await pipeline(await image.openBlob(descriptor), createWriteStream(partial))
          await rename(partial, path)
        } finally {
          await rm(partial, { force: true })
        }
      }),
    ),
  )
  for (const manifest of manifests) await writeFile(join(dir, blobName(manifest.digest)), manifest.bytes)
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const index = (await readIndex(dir).catch(() => undefined)) ?? { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] }
  const root = image.image.root
  index.manifests = index.manifests.filter((d) => d.annotations?.[refNameAnnotation] !== image.reference)
  index.manifests.push({
    mediaType: root.mediaType,
    digest: root.digest,
    size: root.bytes.length,
    annotations: { [containerdNameAnnotation]: image.reference, [refNameAnnotation]: image.reference },
  })
  // Referrers unnamed, after the image, once each however often the folder is written to.
  const listed = new Set(index.manifests.map((d) => d.digest))
  for (const entry of referrerEntries(image.referrers ?? [])) if (!listed.has(entry.digest)) index.manifests.push(entry)
  await writeFile(join(dir, 'index.json.partial'), JSON.stringify(index))
  await rename(join(dir, 'index.json.partial'), join(dir, 'index.json'))
}

async function readIndex(dir: string): Promise<IndexJson> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as IndexJson
  if (!Array.isArray(index.manifests)) throw new Error(`${dir}/index.json is not an OCI image index`)
  return index
}

export interface LayoutImage {
  name: string | undefined
  image: ResolvedImage
  openBlob(descriptor: Descriptor): Promise<Readable>
}

/**
 * The image `name` of the layout in `dir` (its ref.name, full or only a tag): the only one when
 * the layout holds one and no name is given.
 */
export async function readLayoutImage(dir: string, name: string | undefined, options: ResolveOptions): Promise<LayoutImage> {
  const index = await readIndex(dir)
  const names = index.manifests.map((d) => d.annotations?.[refNameAnnotation] ?? d.annotations?.[containerdNameAnnotation])
  // Unnamed entries beside named ones are the images' referrers (signatures, SBOMs), not images to choose from.
  const candidates = names.some((n) => n !== undefined) ? index.manifests.filter((_, i) => names[i] !== undefined) : index.manifests
  let chosen = candidates[0]
  if (name !== undefined) chosen = index.manifests.find((_, i) => names[i] === name)
  else if (candidates.length > 1) {
    const listed = candidates.map((d) => names[index.manifests.indexOf(d)] ?? '(no name)').join(', ')
    throw new Error(`${dir} holds ${candidates.length} images: name one with --ref (${listed})`)
  }
  if (chosen === undefined) throw new Error(name === undefined ? `${dir} holds no image` : `${dir} has no image named ${name}`)
  const fetch = async (digest: Digest): Promise<FetchedManifest> => {
    const bytes = await readFile(join(dir, blobName(digest)))
    if (digestBytes(bytes, digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== digest) {
      throw new Error(`${dir}/${blobName(digest)}: content does not match its digest`)
    }
    return { digest, mediaType: mediaTypeOf(bytes), bytes }
  }
  const digest = tryParseDigest(chosen.digest)
  if (digest === undefined) throw new Error(`${dir}/index.json: ${chosen.digest} is not a digest`)
  const image = await resolveImage(await fetch(digest), fetch, options)
  return {
    name: names[index.manifests.indexOf(chosen)],
    image,
    openBlob: async (descriptor) => {
      const path = join(dir, blobName(descriptor.digest))
      await stat(path)
      const checked = verifying(descriptor.digest, descriptor.size, path)
      const input = createReadStream(path)
      input.once('error', (err) => checked.destroy(err))
      return input.pipe(checked)
    },
  }
}
