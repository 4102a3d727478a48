// An image as a graph of manifests and blobs, resolved from wherever manifests come from (a
// registry, an OCI layout): the root, its children (filtered by platform), every blob they need
// once each, and the tree `ferry bundle ls` prints. An index keeps its bytes unless a platform
// filter drops children; it is then rewritten with the same fields in the same order, minus them.
import { digestBytes, type Digest } from '../core/digest.js'
import { parseManifest, type Descriptor } from '../core/manifest.js'
import { isIndexMediaType } from '../core/media-types.js'
import type { FetchedManifest } from './registry-source.js'

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

/** One manifest of the tree: its digest, what it is, and the bytes it and everything below it hold. */
export interface ImageNode {
  digest: Digest
  mediaType: string
  /** Bytes of the manifests and blobs of this subtree, each distinct digest counted once. */
  size: number
  /** `linux/arm64/v8`, from the parent index. */
  platform?: string
  artifactType?: string
  children?: ImageNode[]
}

export interface ResolvedImage {
  root: FetchedManifest
  /** Children before the index that lists them; the root last. */
  manifests: FetchedManifest[]
  /** Config and layer descriptors, each digest once, in the order the manifests list them. */
  blobs: Descriptor[]
  tree: ImageNode
}

export interface ResolveOptions {
  /** Keep only these platforms of an index (undefined: all). */
  platforms?: Platform[]
  /** Resolve to one platform's manifest instead of the index (the first of `platforms`). */
  singleManifest?: boolean
}

/** Fetches a manifest by digest (children of an index). */
export type FetchManifest = (digest: Digest) => Promise<FetchedManifest>

const maxDepth = 4
/** Config media types of container images; anything else makes the manifest an artifact. */
export const imageConfigTypes: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
])

export function parsePlatform(value: string): Platform {
  const [os, architecture, variant, extra] = value.trim().split('/')
  if (!os || !architecture || extra !== undefined) throw new Error(`"${value}" is not a platform (os/architecture[/variant])`)
  return { os, architecture, ...(variant ? { variant } : {}) }
}

export function platformText(platform: Record<string, unknown> | Platform | undefined): string | undefined {
  if (platform === undefined) return undefined
  const { os, architecture, variant } = platform as Record<string, unknown>
  if (typeof os !== 'string' || typeof architecture !== 'string') return undefined
  return [os, architecture, ...(typeof variant === 'string' && variant !== '' ? [variant] : [])].join('/')
}

/** Whether a descriptor's platform is `wanted` (a variant only when one is asked for). */
export function platformMatches(platform: Record<string, unknown> | undefined, wanted: Platform): boolean {
  if (platform === undefined) return false
  if (platform.os !== wanted.os || platform.architecture !== wanted.architecture) return false
  return wanted.variant === undefined || platform.variant === wanted.variant
}

/** The platform of the machine this runs on, in OCI's words. */
export function hostPlatform(): Platform {
  const architectures: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' }
  return { os: 'linux', architecture: architectures[process.arch] ?? process.arch }
}

export async function resolveImage(root: FetchedManifest, fetch: FetchManifest, options: ResolveOptions = {}): Promise<ResolvedImage> {
  let top = root
  if (options.singleManifest === true && isIndexMediaType(root.mediaType)) {
    const wanted = options.platforms?.[0] ?? hostPlatform()
    const parsed = parseManifest(root.bytes, root.mediaType)
    const child = parsed.manifests.find((d) => platformMatches(d.platform, wanted))
    if (child === undefined) {
      const offered = parsed.manifests.map((d) => platformText(d.platform) ?? '?').join(', ')
      throw new Error(`${root.digest} has no ${platformText(wanted)} manifest (it has ${offered})`)
    }
    top = await fetch(child.digest)
  }
  const manifests: FetchedManifest[] = []
  const blobs: Descriptor[] = []
  const { node } = await visit(top, fetch, options.singleManifest === true ? undefined : options.platforms, manifests, blobs, 0)
  return { root: manifests.at(-1)!, manifests, blobs, tree: node }
}

async function visit(
  manifest: FetchedManifest,
  fetch: FetchManifest,
  platforms: Platform[] | undefined,
  manifests: FetchedManifest[],
  blobs: Descriptor[],
  depth: number,
): Promise<{ node: ImageNode; sizes: Map<string, number> }> {
  const parsed = parseManifest(manifest.bytes, manifest.mediaType)
  const sizes = new Map<string, number>([[manifest.digest, manifest.bytes.length]])
  if (parsed.manifests.length === 0 || !isIndexMediaType(parsed.mediaType)) {
    for (const blob of parsed.blobs) {
      sizes.set(blob.digest, blob.size)
      if (!blobs.some((known) => known.digest === blob.digest)) blobs.push(blob)
    }
    manifests.push(manifest)
    const node: ImageNode = { digest: manifest.digest, mediaType: parsed.mediaType, size: total(sizes) }
    if (parsed.artifactType !== undefined && !imageConfigTypes.has(parsed.artifactType)) node.artifactType = parsed.artifactType
    return { node, sizes }
  }
  if (depth >= maxDepth) throw new Error(`${manifest.digest}: indexes nested too deep`)
  let kept = parsed.manifests
  let index = manifest
  if (platforms !== undefined) {
    kept = parsed.manifests.filter((d) => platforms.some((p) => platformMatches(d.platform, p)))
    if (kept.length === 0) {
      const offered = parsed.manifests.map((d) => platformText(d.platform) ?? '?').join(', ')
      throw new Error(`${manifest.digest} has none of ${platforms.map((p) => platformText(p)).join(', ')} (it has ${offered})`)
    }
    if (kept.length < parsed.manifests.length) index = rewriteIndex(manifest, kept)
  }
  sizes.clear()
  sizes.set(index.digest, index.bytes.length)
  const children: ImageNode[] = []
  for (const descriptor of kept) {
    const child = await visit(await fetch(descriptor.digest), fetch, platforms, manifests, blobs, depth + 1)
    for (const [digest, size] of child.sizes) sizes.set(digest, size)
    const platform = platformText(descriptor.platform)
    children.push({ ...child.node, ...(platform !== undefined ? { platform } : {}) })
  }
  manifests.push(index)
  return { node: { digest: index.digest, mediaType: parsed.mediaType, size: total(sizes), children }, sizes }
}

function total(sizes: Map<string, number>): number {
  let sum = 0
  for (const size of sizes.values()) sum += size
  return sum
}

/** The index without the children it no longer lists, every other field as it was. */
function rewriteIndex(index: FetchedManifest, kept: Descriptor[]): FetchedManifest {
  const document = JSON.parse(index.bytes.toString('utf8')) as { manifests: Array<{ digest?: unknown }> }
  const digests = new Set<string>(kept.map((d) => d.digest))
  document.manifests = document.manifests.filter((d) => typeof d.digest === 'string' && digests.has(d.digest))
  const bytes = Buffer.from(JSON.stringify(document), 'utf8')
  return { digest: digestBytes(bytes), mediaType: index.mediaType, bytes }
}
