// Writes Ferry's bundle: a tar whose first entry is the table of contents (toc.ts), then an OCI
// image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) and a Docker `manifest.json` so
// `docker load` (and skopeo's docker-archive:) read it as Docker 25+ saves are read. Deterministic:
// fixed times, owners and modes, entries in the order the images and their manifests list them, so
// the same images give the same bytes. Blobs are fetched ahead by up to `concurrency` downloads,
// each into a temp file beside the output that is deleted once written into the tar: the extra
// disk is at most `concurrency` blobs.
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { pack, type Header, type Pack } from 'tar-stream'

type HeaderArgument = Partial<Header> & Pick<Header, 'name'>
import { digestAlgorithm, digestEncoded, type Digest } from '../core/digest.js'
import { parseManifest, type Descriptor } from '../core/manifest.js'
import { isIndexMediaType, mediaTypes } from '../core/media-types.js'
import { writeCompressed, type OutputCompression } from './compress.js'
import { platformMatches, type Platform, type ResolvedImage } from './image-graph.js'
import type { FetchedManifest } from './registry-source.js'
import { serialiseToc, tocEntryName, tocFormat, type BundleImage, type BundleToc } from './toc.js'

export interface ImageToWrite {
  reference: string
  /** Whether `reference` names a tag (Docker's manifest.json gets it as a RepoTag). */
  tagged: boolean
  image: ResolvedImage
  /** Manifests whose `subject` is one of the image's (signatures, SBOMs): bundled after it, listed unnamed in index.json. */
  referrers?: ResolvedImage[]
  /** The bytes of one of its blobs (or its referrers'); the stream must fail unless they match the descriptor. */
  openBlob(descriptor: Descriptor): Promise<Readable>
}

export interface WriteBundleOptions {
  output: string
  compression: OutputCompression
  /** Blob downloads ahead of the writer. */
  concurrency: number
  /** Which platform of an index Docker's manifest.json names (docker load takes one per image). */
  dockerPlatform: Platform
  /** Stops the downloads (and so the bundle). */
  signal?: AbortSignal
  /** Called once the content is known, with the bytes of every blob to write. */
  onPlan?: (bytes: number) => void
  /** Called after each blob is in the tar, with its size. */
  onBlob?: (bytes: number) => void
}

export const refNameAnnotation = 'org.opencontainers.image.ref.name'
export const containerdNameAnnotation = 'io.containerd.image.name'
const epoch = new Date(0)
const downloadAttempts = 3

export async function writeBundle(images: ImageToWrite[], options: WriteBundleOptions): Promise<{ blobs: number; bytes: number }> {
  const manifests = new Map<Digest, FetchedManifest>()
  const blobs = new Map<Digest, { descriptor: Descriptor; image: ImageToWrite }>()
  const graphs = (image: ImageToWrite): ResolvedImage[] => [image.image, ...(image.referrers ?? [])]
  for (const image of images) {
    for (const graph of graphs(image)) {
      for (const manifest of graph.manifests) if (!manifests.has(manifest.digest)) manifests.set(manifest.digest, manifest)
    }
  }
  for (const image of images) {
    for (const descriptor of graphs(image).flatMap((graph) => graph.blobs)) {
      if (!manifests.has(descriptor.digest) && !blobs.has(descriptor.digest)) blobs.set(descriptor.digest, { descriptor, image })
    }
  }
  let bytes = 0
  for (const manifest of manifests.values()) bytes += manifest.bytes.length
  for (const { descriptor } of blobs.values()) bytes += descriptor.size
  options.onPlan?.(bytes)
  const toc: BundleToc = {
    format: tocFormat,
    images: images.map((i): BundleImage => ({
      reference: i.reference,
      ...i.image.tree,
      ...(i.referrers?.length ? { referrers: i.referrers.map((r) => r.tree) } : {}),
    })),
    blobs: manifests.size + blobs.size,
    bytes,
  }
  const index = {
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    manifests: [
      ...images.map((i) => ({
        mediaType: i.image.root.mediaType,
        digest: i.image.root.digest,
        size: i.image.root.bytes.length,
        annotations: { [containerdNameAnnotation]: i.reference, [refNameAnnotation]: i.reference },
      })),
      ...referrerEntries(images.flatMap((i) => i.referrers ?? [])),
    ],
  }
  const docker = images.flatMap((i) => dockerEntry(i, options.dockerPlatform))
  const algorithms = [...new Set([...manifests.keys(), ...blobs.keys()].map((d) => digestAlgorithm(d)))].sort()

  const folder = dirname(options.output)
  if ((await stat(folder).catch(() => undefined))?.isDirectory() !== true) throw new Error(`${options.output}: no such folder ${folder}`)
  const tmp = await mkdtemp(join(folder, '.ferry-bundle-'))
  const partial = join(tmp, 'bundle.partial')
  const tar = pack()
  try {
    const written = writeCompressed(Readable.from(tar as AsyncIterable<Buffer>), options.compression, partial)
    written.catch(() => undefined)
    const entries = (async () => {
      await entry(tar, file(tocEntryName), serialiseToc(toc))
      await entry(tar, file('oci-layout'), Buffer.from('{"imageLayoutVersion":"1.0.0"}'))
      await entry(tar, file('index.json'), Buffer.from(JSON.stringify(index)))
      if (docker.length > 0) await entry(tar, file('manifest.json'), Buffer.from(JSON.stringify(docker)))
      await entry(tar, directory('blobs/'))
      for (const algorithm of algorithms) await entry(tar, directory(`blobs/${algorithm}/`))
      for (const manifest of manifests.values()) {
        await entry(tar, file(blobName(manifest.digest)), manifest.bytes)
        options.onBlob?.(manifest.bytes.length)
      }
      await writeBlobs(tar, [...blobs.values()], tmp, options)
      tar.finalize()
    })()
    // A failed download ends the tar too, so the compressor stops and both promises settle.
    entries.catch((err: unknown) => tar.destroy(err as Error))
    await Promise.all([entries, written])
    await rename(partial, options.output)
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
  return { blobs: manifests.size + blobs.size, bytes }
}

/**
 * index.json entries of referrers: unnamed (a reader places them by their `subject`, as
 * `ferry push images` does), once each, with the artifactType the referrers API would report.
 */
export function referrerEntries(
  referrers: ResolvedImage[],
): Array<{ mediaType: string; digest: Digest; size: number; artifactType?: string }> {
  const seen = new Set<string>()
  return referrers
    .filter((r) => !seen.has(r.root.digest) && seen.add(r.root.digest))
    .map((r) => ({
      mediaType: r.root.mediaType,
      digest: r.root.digest,
      size: r.root.bytes.length,
      ...(r.tree.artifactType !== undefined ? { artifactType: r.tree.artifactType } : {}),
    }))
}

/** Downloads run ahead of the writer by at most `concurrency` blobs; each lands in the tar in order. */
async function writeBlobs(
  tar: Pack,
  blobs: Array<{ descriptor: Descriptor; image: ImageToWrite }>,
  tmp: string,
  options: WriteBundleOptions,
): Promise<void> {
  const downloads: Array<Promise<string>> = []
  const start = (i: number): void => {
    if (i >= blobs.length || downloads[i] !== undefined) return
    const { descriptor, image } = blobs[i]!
    const path = join(tmp, `blob-${i}`)
    downloads[i] = download(image, descriptor, path, options.signal)
    downloads[i].catch(() => undefined)
  }
  for (let i = 0; i < options.concurrency; i++) start(i)
  for (const [i, { descriptor }] of blobs.entries()) {
    const path = await downloads[i]!
    await entry(tar, file(blobName(descriptor.digest), descriptor.size), createReadStream(path, { highWaterMark: 1024 * 1024 }))
    await rm(path, { force: true })
    options.onBlob?.(descriptor.size)
    start(i + options.concurrency)
  }
}

async function download(image: ImageToWrite, descriptor: Descriptor, path: string, signal: AbortSignal | undefined): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pipeline(await image.openBlob(descriptor), createWriteStream(path))
      return path
    } catch (err) {
      if (attempt >= downloadAttempts || signal?.aborted === true) throw err
    }
  }
}

/** docker load's view of an image: one platform's config and layers, named by its tag. */
function dockerEntry(image: ImageToWrite, platform: Platform): Array<{ Config: string; RepoTags: string[]; Layers: string[] }> {
  const byDigest = new Map(image.image.manifests.map((m) => [m.digest, m]))
  let manifest = image.image.root
  for (let depth = 0; depth < 4 && isIndexMediaType(manifest.mediaType); depth++) {
    const children = parseManifest(manifest.bytes, manifest.mediaType).manifests.filter((d) => byDigest.has(d.digest))
    const child = children.find((d) => platformMatches(d.platform, platform)) ?? children[0]
    if (child === undefined) return []
    manifest = byDigest.get(child.digest)!
  }
  if (isIndexMediaType(manifest.mediaType)) return []
  const parsed = parseManifest(manifest.bytes, manifest.mediaType)
  const [config, ...layers] = parsed.blobs
  // Artifacts (Helm charts, signatures) are not images docker could load.
  if (config === undefined || !/^application\/vnd\.(oci\.image\.config\.v1|docker\.container\.image\.v1)\+json$/.test(config.mediaType)) {
    return []
  }
  return [
    {
      Config: blobName(config.digest),
      RepoTags: image.tagged ? [image.reference] : [],
      Layers: layers.map((l) => blobName(l.digest)),
    },
  ]
}

export function blobName(digest: Digest): string {
  return `blobs/${digestAlgorithm(digest)}/${digestEncoded(digest)}`
}

function file(name: string, size?: number): HeaderArgument {
  return { name, type: 'file', mode: 0o644, mtime: epoch, uid: 0, gid: 0, uname: '', gname: '', ...(size !== undefined ? { size } : {}) }
}

function directory(name: string): HeaderArgument {
  return { name, type: 'directory', mode: 0o755, mtime: epoch, uid: 0, gid: 0, uname: '', gname: '' }
}

/** Adds one entry and waits until the tar has taken all of it. */
function entry(tar: Pack, header: HeaderArgument, content?: Buffer | Readable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve())
    if (content === undefined) return void tar.entry(header, done)
    if (Buffer.isBuffer(content)) return void tar.entry(header, content, done)
    const sink = tar.entry(header, done)
    content.once('error', (err) => {
      sink.destroy(err)
      reject(err)
    })
    content.pipe(sink as unknown as NodeJS.WritableStream)
  })
}
