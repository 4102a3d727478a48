// A registry manifest for an image from a legacy `docker save` (manifest.json + config + layer
// files): the bundle has none. Layers are pushed as they are, so a plain layer.tar becomes an
// uncompressed layer; the manifest is a Docker schema 2 (the config is a Docker image config),
// serialised the same way every time, so the same bundle always yields the same digests.
import { mediaTypes } from '../core/media-types.js'
import type { Digest } from '../core/digest.js'
import type { Compression } from './magic.js'

export const dockerConfigMediaType = 'application/vnd.docker.container.image.v1+json'
export const dockerLayerMediaTypes: Partial<Record<Compression | 'none', string>> = {
  none: 'application/vnd.docker.image.rootfs.diff.tar',
  gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
}

export interface SavedLayer {
  digest: Digest
  size: number
  compression: Compression | undefined
}

/** One entry of a docker-save manifest.json. */
export interface SavedImage {
  Config: string
  RepoTags: string[]
  Layers: string[]
}

/** Parses manifest.json; undefined when it is not a docker-save manifest. */
export function parseSavedImages(bytes: Buffer): SavedImage[] | undefined {
  let document: unknown
  try {
    document = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  if (!Array.isArray(document)) return undefined
  const images: SavedImage[] = []
  for (const item of document as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined
    const { Config, RepoTags, Layers } = item as Record<string, unknown>
    if (typeof Config !== 'string' || !Array.isArray(Layers) || !Layers.every((l) => typeof l === 'string')) return undefined
    const tags = Array.isArray(RepoTags) ? RepoTags.filter((t): t is string => typeof t === 'string') : []
    images.push({ Config, RepoTags: tags, Layers: Layers as string[] })
  }
  return images
}

/** The manifest bytes, or a reason the layers cannot be described (a compression schema 2 has no type for). */
export function savedImageManifest(config: { digest: Digest; size: number }, layers: SavedLayer[]): Buffer | string {
  const described = []
  for (const layer of layers) {
    const mediaType = dockerLayerMediaTypes[layer.compression ?? 'none']
    if (mediaType === undefined)
      return `layer ${layer.digest} is ${layer.compression}-compressed, which a Docker image manifest cannot describe`
    described.push({ mediaType, size: layer.size, digest: layer.digest })
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: mediaTypes.dockerManifest,
    config: { mediaType: dockerConfigMediaType, size: config.size, digest: config.digest },
    layers: described,
  }
  // Docker's own indentation (three spaces), fixed key order.
  return Buffer.from(JSON.stringify(manifest, null, 3))
}

/** The config's rootfs.diff_ids, undefined when it has none. */
export function diffIds(config: Buffer): string[] | undefined {
  try {
    const parsed = JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }
    const ids = parsed.rootfs?.diff_ids
    return Array.isArray(ids) && ids.every((id) => typeof id === 'string') ? (ids as string[]) : undefined
  } catch {
    return undefined
  }
}
