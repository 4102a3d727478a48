// `ferry bundle create`: resolves each reference in a registry (in parallel, `concurrency` at a
// time), then writes them into one bundle (bundle-writer.ts) in the order they were given.
import type { Digest } from '../core/digest.js'
import type { OutputCompression } from './compress.js'
import { writeBundle, type ImageToWrite } from './bundle-writer.js'
import { hostPlatform, resolveImage, type Platform, type ResolvedImage } from './image-graph.js'
import { parseImageRef, type ImageRef } from './image-ref.js'
import { Limiter } from './limiter.js'
import type { RegistrySource } from './registry-source.js'

export interface CreateOptions {
  references: string[]
  output: string
  compression: OutputCompression
  platforms?: Platform[]
  concurrency: number
  /** Bundle each image's referrers (signatures, SBOMs) with it (default true). */
  referrers?: boolean
  onImage?: (reference: string, image: ResolvedImage) => void
  /** Once every image is resolved: the bytes the bundle will hold. */
  onPlan?: (bytes: number) => void
  onBlob?: (bytes: number) => void
  signal?: AbortSignal
}

export async function createBundle(
  source: RegistrySource,
  options: CreateOptions,
): Promise<{ images: number; blobs: number; bytes: number }> {
  const refs = options.references.map(parseImageRef)
  const seen = new Set<string>()
  const unique = refs.filter((ref) => !seen.has(ref.text) && seen.add(ref.text))
  const limiter = new Limiter(options.concurrency)
  const images = await Promise.all(
    unique.map((ref) =>
      limiter.run(async () => {
        const image = await resolveFrom(source, ref, options.platforms, false, options.signal)
        options.onImage?.(ref.text, image)
        const referrers = options.referrers === false ? [] : await resolveReferrers(source, ref, image, options.signal)
        return toWrite(source, ref, image, options.signal, referrers)
      }),
    ),
  )
  const written = await writeBundle(images, {
    output: options.output,
    compression: options.compression,
    concurrency: options.concurrency,
    dockerPlatform: options.platforms?.[0] ?? hostPlatform(),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onPlan ? { onPlan: options.onPlan } : {}),
    ...(options.onBlob ? { onBlob: options.onBlob } : {}),
  })
  return { images: images.length, ...written }
}

/** Resolves `ref` in its registry: the root manifest and, for an index, the children kept. */
export async function resolveFrom(
  source: RegistrySource,
  ref: ImageRef,
  platforms: Platform[] | undefined,
  singleManifest: boolean,
  signal?: AbortSignal,
): Promise<ResolvedImage> {
  const root = await source.manifest(ref, undefined, signal)
  try {
    return await resolveImage(root, (digest: Digest) => source.manifest(ref, digest, signal), {
      ...(platforms ? { platforms } : {}),
      singleManifest,
    })
  } catch (err) {
    throw new Error(`${ref.text}: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * The referrers of an image's manifests (the index and each platform kept), found through the
 * referrers API or its tag fallback (registry-source.ts), each resolved whole; sorted by digest
 * per manifest, so the same registry content gives the same bundle.
 */
export async function resolveReferrers(
  source: RegistrySource,
  ref: ImageRef,
  image: ResolvedImage,
  signal?: AbortSignal,
): Promise<ResolvedImage[]> {
  const seen = new Set<string>(image.manifests.map((m) => m.digest))
  const found: ResolvedImage[] = []
  for (const manifest of image.manifests) {
    const descriptors = await source.referrers(ref, manifest.digest, signal)
    for (const descriptor of descriptors.sort((a, b) => a.digest.localeCompare(b.digest))) {
      if (seen.has(descriptor.digest)) continue
      seen.add(descriptor.digest)
      try {
        const root = await source.manifest(ref, descriptor.digest, signal)
        found.push(await resolveImage(root, (digest: Digest) => source.manifest(ref, digest, signal)))
      } catch (err) {
        throw new Error(`${ref.text}: referrer ${descriptor.digest}: ${(err as Error).message}`, { cause: err })
      }
    }
  }
  return found
}

export function toWrite(
  source: RegistrySource,
  ref: ImageRef,
  image: ResolvedImage,
  signal?: AbortSignal,
  referrers: ResolvedImage[] = [],
): ImageToWrite {
  return {
    reference: ref.text,
    tagged: ref.tag !== undefined,
    image,
    ...(referrers.length > 0 ? { referrers } : {}),
    openBlob: (descriptor) => source.blob(ref, descriptor.digest, descriptor.size, signal),
  }
}
