// Once the whole bundle has been read: the images it holds, each with the manifests to push
// (children before the index that lists them) and the blobs they need, or the reason it cannot
// be pushed. OCI layouts (Docker 25+ saves included) keep their manifests byte-exact; legacy
// docker saves get one built (docker-save.ts).
import { posix } from 'node:path'
import { digestBytes, tryParseDigest, type Digest } from '../core/digest.js'
import { parseManifest } from '../core/manifest.js'
import { mediaTypes } from '../core/media-types.js'
import { isWithin, type ArchiveFiles, type BundleContent, type Scope } from './content.js'
import { diffIds, parseSavedImages, savedImageManifest, type SavedLayer } from './docker-save.js'
import { normalisePath } from './entries.js'
import { withCosignTags } from './hauler.js'
import { isFullReference, parseSourceName, unnamedDestination } from './naming.js'

export interface PlannedManifest {
  digest: Digest
  mediaType: string
  bytes: Buffer
}

export interface ImagePlan {
  /** The name the bundle gives it (`gcr.io/x/y:1.0`); undefined for an image without one. */
  source: string | undefined
  /** The archive it was found in. */
  archive: string
  /** Repository path and tag under the destination namespace (`x/y`, `1.0`); no tag: pushed by digest only. */
  path: string
  tag: string | undefined
  /** The root manifest. */
  digest: Digest
  mediaType: string
  /** Children first, the root last. */
  manifests: PlannedManifest[]
  /** Every blob the manifests need, once each. */
  blobs: Array<{ digest: Digest; size: number }>
  /** Why it cannot be pushed (the other images still are). */
  problem?: string
  /** A referrer (signature, SBOM: a manifest with a `subject`): the name of the image it goes with, into whose repository it is pushed by digest. */
  referrerOf?: string | undefined
}

const refName = 'org.opencontainers.image.ref.name'
const containerdName = 'io.containerd.image.name'
// Zarf names the images of a package this way in images/index.json (older Zarf leaves docker.io off).
const baseName = 'org.opencontainers.image.base.name'
const maxIndexDepth = 4

/** `os/architecture[/variant]`, as --platform takes it. */
export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export interface PlanOptions {
  /** Push only these platforms of multi-arch indexes (the index is rewritten); all when absent. */
  platforms?: Platform[]
}

export function parsePlatform(value: string): Platform | undefined {
  const [os, architecture, variant, extra] = value.trim().split('/')
  if (!os || !architecture || extra !== undefined) return undefined
  return { os, architecture, ...(variant ? { variant } : {}) }
}

export function planImages(content: BundleContent, options: PlanOptions = {}): ImagePlan[] {
  const plans: ImagePlan[] = []
  for (const scope of content.scopes) {
    const where = scope.prefix === '' ? scope.archive.label : `${scope.archive.label}!/${scope.prefix}`
    const broken = content.broken.find((b) => isWithin(scope.archive.label, b.label))
    if ((scope.haulerIndexJson ?? scope.indexJson) !== undefined) plans.push(...layoutImages(content, scope, where, options))
    else if (scope.dockerManifest !== undefined) plans.push(...savedImages(content, scope, where))
    if (broken !== undefined) for (const plan of plans) if (plan.archive === where) plan.problem ??= broken.error
  }
  // A nested archive that broke before any image in it was found still fails the run.
  for (const broken of content.broken) {
    if (!plans.some((plan) => isWithin(plan.archive, broken.label))) plans.push(failed(broken.label, broken.error))
  }
  return plans
}

function layoutImages(content: BundleContent, scope: Scope, where: string, options: PlanOptions): ImagePlan[] {
  let descriptors: Array<{ mediaType?: unknown; digest?: unknown; annotations?: Record<string, unknown> }>
  try {
    const index = JSON.parse((scope.haulerIndexJson ?? scope.indexJson)!.toString('utf8')) as { manifests?: unknown }
    if (!Array.isArray(index.manifests)) throw new Error('no manifests array')
    descriptors = index.manifests as typeof descriptors
  } catch (err) {
    if (!scope.hasBlobs) return []
    return [failed(where, `${where}/index.json is not an OCI image index (${(err as Error).message})`)]
  }
  const saved = scope.dockerManifest === undefined ? [] : (parseSavedImages(scope.dockerManifest) ?? [])
  const entries = descriptors.map((d) => ({
    digest: typeof d.digest === 'string' ? tryParseDigest(d.digest) : undefined,
    annotations: d.annotations ?? {},
  }))
  const plans = withReferrers(
    content,
    descriptors.map((descriptor) => {
      const digest = typeof descriptor.digest === 'string' ? tryParseDigest(descriptor.digest) : undefined
      if (digest === undefined) return failed(where, `${where}/index.json lists an entry without a valid digest`)
      const mediaType = typeof descriptor.mediaType === 'string' ? descriptor.mediaType : mediaTypes.ociManifest
      const plan: ImagePlan = { source: undefined, archive: where, path: '', tag: undefined, digest, mediaType, manifests: [], blobs: [] }
      try {
        if (options.platforms !== undefined) plan.digest = selectPlatforms(content, digest, mediaType, options.platforms, where)
        collectManifest(content, plan, plan.digest, mediaType, 0, new Set())
      } catch (err) {
        plan.problem = (err as Error).message
      }
      plan.source = layoutName(descriptor.annotations ?? {}, plan, saved, scope)
      return name(plan)
    }),
  )
  return withCosignTags(content, entries, plans)
}

/**
 * Referrers listed in index.json (cosign signatures, SBOMs: manifests whose `subject` is an image
 * of the same layout) travel with their subject: into its repository, by digest, never as an
 * unnamed image of their own; into each repository when the layout names the image twice.
 */
function withReferrers(content: BundleContent, plans: ImagePlan[]): ImagePlan[] {
  return plans.flatMap((plan) => {
    const root = plan.problem === undefined ? content.documents.get(plan.digest) : undefined
    if (root === undefined) return [plan]
    let subject: unknown
    try {
      subject = (JSON.parse(root.toString('utf8')) as { subject?: { digest?: unknown } }).subject?.digest
    } catch {
      return [plan]
    }
    if (typeof subject !== 'string') return [plan]
    const owners = plans.filter((other) => other !== plan && other.path !== '' && other.manifests.some((m) => m.digest === subject))
    const paths = new Set<string>()
    const placed = owners
      .filter((owner) => !paths.has(owner.path) && paths.add(owner.path))
      .map((owner) => ({ ...plan, source: undefined, path: owner.path, tag: undefined, referrerOf: owner.source }))
    return placed.length > 0 ? placed : [plan]
  })
}

/** The image's name: containerd's annotation, a full ref.name, Zarf's base.name, or docker save's RepoTags for its config. */
function layoutName(annotations: Record<string, unknown>, plan: ImagePlan, saved: ReturnType<typeof parseSavedImages>, scope: Scope) {
  const containerd = annotations[containerdName]
  if (typeof containerd === 'string' && parseSourceName(containerd) !== undefined) return containerd
  const ref = annotations[refName]
  if (typeof ref === 'string' && isFullReference(ref) && parseSourceName(ref) !== undefined) return ref
  const base = annotations[baseName]
  if (typeof base === 'string' && isFullReference(base) && parseSourceName(base) !== undefined) return base
  const config = plan.manifests.at(-1) && configDigest(plan.manifests.at(-1)!)
  for (const image of saved ?? []) {
    if (config !== undefined && resolvePath(scope.archive, scope.prefix, image.Config) === config && image.RepoTags[0] !== undefined) {
      return image.RepoTags[0]
    }
  }
  return undefined
}

/**
 * An index with only the children of the given platforms, as new bytes under a new digest (added
 * to the documents): the original's key order and formatting are not kept, its other fields are.
 * The original digest when every child is kept, or when it is no index. Entries that refer to a
 * kept child (Docker's attestation manifests) stay with it.
 */
function selectPlatforms(content: BundleContent, digest: Digest, mediaType: string, platforms: Platform[], where: string): Digest {
  const bytes = content.documents.get(digest)
  if (bytes === undefined) return digest
  const parsed = parseManifest(bytes, mediaType)
  if (parsed.manifests.length === 0) return digest
  const index = JSON.parse(bytes.toString('utf8')) as { manifests: Array<Record<string, unknown>> }
  const wanted = (entry: Record<string, unknown>): boolean => {
    const platform = entry.platform as { os?: unknown; architecture?: unknown; variant?: unknown } | undefined
    return platforms.some(
      (p) =>
        platform?.os === p.os && platform.architecture === p.architecture && (p.variant === undefined || platform.variant === p.variant),
    )
  }
  const kept = index.manifests.filter(wanted)
  const keptDigests = new Set(kept.map((entry) => entry.digest))
  const referring = index.manifests.filter((entry) => {
    const annotations = entry.annotations as Record<string, unknown> | undefined
    return !wanted(entry) && keptDigests.has(annotations?.['vnd.docker.reference.digest'])
  })
  if (kept.length === 0) {
    const wantedList = platforms.map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/')).join(', ')
    throw new Error(`${where}: index ${digest} has no manifest for ${wantedList}`)
  }
  if (kept.length + referring.length === index.manifests.length) return digest
  const subset = Buffer.from(
    JSON.stringify({ ...index, manifests: index.manifests.filter((e) => kept.includes(e) || referring.includes(e)) }),
  )
  const subsetDigest = digestBytes(subset)
  content.documents.set(subsetDigest, subset)
  return subsetDigest
}

function configDigest(manifest: PlannedManifest): Digest | undefined {
  try {
    return parseManifest(manifest.bytes, manifest.mediaType).blobs[0]?.digest
  } catch {
    return undefined
  }
}

function collectManifest(
  content: BundleContent,
  plan: ImagePlan,
  digest: Digest,
  mediaType: string,
  depth: number,
  seen: Set<string>,
): void {
  if (seen.has(digest)) return
  seen.add(digest)
  const bytes = content.documents.get(digest)
  if (bytes === undefined) {
    const problem = content.blobs.get(digest)?.problem
    throw new Error(problem ?? `manifest ${digest} is missing from ${plan.archive}`)
  }
  const parsed = parseManifest(bytes, mediaType)
  if (parsed.manifests.length > 0 && depth >= maxIndexDepth) throw new Error(`${plan.archive}: indexes nested too deep at ${digest}`)
  for (const child of parsed.manifests) collectManifest(content, plan, child.digest, child.mediaType, depth + 1, seen)
  for (const blob of parsed.blobs) {
    const record = content.blobs.get(blob.digest)
    if (record?.problem !== undefined) throw new Error(`blob ${blob.digest} is unusable: ${record.problem}`)
    if (record === undefined) throw new Error(`blob ${blob.digest} is missing from ${plan.archive}`)
    if (!plan.blobs.some((b) => b.digest === blob.digest)) plan.blobs.push({ digest: blob.digest, size: record.size })
  }
  plan.manifests.push({ digest, mediaType: parsed.mediaType, bytes })
}

function savedImages(content: BundleContent, scope: Scope, where: string): ImagePlan[] {
  const images = parseSavedImages(scope.dockerManifest!)
  if (images === undefined) return []
  return images.flatMap((image) => {
    const plan = savedImagePlan(content, scope, where, image.Config, image.Layers)
    const names = image.RepoTags.length > 0 ? image.RepoTags : [undefined]
    return names.map((source) => name({ ...plan, source }))
  })
}

function savedImagePlan(content: BundleContent, scope: Scope, where: string, configPath: string, layerPaths: string[]): ImagePlan {
  const plan: ImagePlan = {
    source: undefined,
    archive: where,
    path: '',
    tag: undefined,
    digest: '' as Digest,
    mediaType: mediaTypes.dockerManifest,
    manifests: [],
    blobs: [],
  }
  const configDigest = resolvePath(scope.archive, scope.prefix, configPath)
  const config = configDigest && content.documents.get(configDigest)
  if (configDigest === undefined || config === undefined) return { ...plan, problem: `config ${configPath} is missing from ${where}` }
  const layers: SavedLayer[] = []
  for (const path of layerPaths) {
    const digest = resolvePath(scope.archive, scope.prefix, path)
    // A layer compressed on the way is filed under the digest of its plain tar.
    const pushedAs = digest && content.compressedLayers.get(digest)
    const record = digest && content.blobs.get(pushedAs ?? digest)
    if (digest === undefined || record === undefined) return { ...plan, problem: `layer ${path} is missing from ${where}` }
    if (record.problem !== undefined) return { ...plan, problem: `layer ${path} is unusable: ${record.problem}` }
    const diffId = pushedAs !== undefined || record.compression === undefined ? digest : undefined
    layers.push({ digest: record.digest, size: record.size, compression: record.compression, diffId })
  }
  // A plain layer's digest is its diff ID: the config vouches for the bytes.
  const ids = diffIds(config)
  for (const [i, layer] of layers.entries()) {
    if (layer.diffId !== undefined && ids !== undefined && ids[i] !== layer.diffId) {
      return {
        ...plan,
        problem: `layer ${layerPaths[i]} in ${where} does not match the config's diff ID ${ids[i] ?? '(none)'}: got ${layer.diffId}`,
      }
    }
  }
  const manifest = savedImageManifest({ digest: configDigest, size: config.length }, layers)
  if (typeof manifest === 'string') return { ...plan, problem: `${where}: ${manifest}` }
  const digest = digestBytes(manifest.bytes)
  plan.digest = digest
  plan.mediaType = manifest.mediaType
  plan.manifests = [{ digest, mediaType: manifest.mediaType, bytes: manifest.bytes }]
  plan.blobs = [{ digest: configDigest, size: config.length }]
  for (const layer of layers)
    if (!plan.blobs.some((b) => b.digest === layer.digest)) plan.blobs.push({ digest: layer.digest, size: layer.size })
  return plan
}

/** A file named in manifest.json (relative to it), symlinks followed, as the digest of its bytes. */
function resolvePath(archive: ArchiveFiles, prefix: string, relative: string): Digest | undefined {
  let path = normalisePath(posix.join(prefix, relative))
  for (let hops = 0; hops < 8; hops++) {
    const known = archive.paths.get(path)
    if (known !== undefined) return known
    const blob = /(?:^|\/)blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(path)
    if (blob !== null) return tryParseDigest(`${blob[1]}:${blob[2]}`)
    const target = archive.links.get(path)
    if (target === undefined) return undefined
    path = target
  }
  return undefined
}

function failed(archive: string, problem: string): ImagePlan {
  return { source: undefined, archive, path: '', tag: undefined, digest: '' as Digest, mediaType: '', manifests: [], blobs: [], problem }
}

/** Sets path and tag from the source name, or from the digest for an image without one. */
function name(plan: ImagePlan): ImagePlan {
  const parsed = plan.source === undefined ? undefined : parseSourceName(plan.source)
  if (parsed !== undefined) return { ...plan, path: parsed.path, tag: parsed.tag ?? (parsed.digest ? undefined : 'latest') }
  if (plan.digest === '') return { ...plan, path: '', tag: undefined }
  const unnamed = unnamedDestination(plan.digest)
  return { ...plan, source: undefined, path: unnamed.path, tag: unnamed.tag }
}

/** Two different images under one name would make the tag depend on timing: the later ones are refused. */
export function withoutConflicts(plans: ImagePlan[]): ImagePlan[] {
  const first = new Map<string, ImagePlan>()
  return plans.map((plan) => {
    if (plan.problem !== undefined || plan.path === '') return plan
    const key = `${plan.path}:${plan.tag ?? plan.digest}`
    const taken = first.get(key)
    if (taken === undefined) {
      first.set(key, plan)
      return plan
    }
    if (taken.digest === plan.digest) return plan
    return { ...plan, problem: `${plan.source ?? key} names a different image (${taken.digest}) in ${taken.archive} too` }
  })
}
