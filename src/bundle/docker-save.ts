// A registry manifest for an image from a legacy `docker save` (manifest.json + config + layer
// files): the bundle has none. Plain layer.tar files are pushed as they are (uncompressed layers)
// or compressed on the way (--layer-compression, layer-compression.ts). The manifest is a Docker
// schema 2 (the config is a Docker image config), or an OCI manifest when a layer is zstd, which
// schema 2 has no type for; it is serialised the same way every time, so the same bundle always
// yields the same digests.
import { mediaTypes } from '../core/media-types.js'
import type { Digest } from '../core/digest.js'
import type { Compression } from './magic.js'

export const dockerConfigMediaType = 'application/vnd.docker.container.image.v1+json'
export const ociConfigMediaType = 'application/vnd.oci.image.config.v1+json'
export const dockerLayerMediaTypes: Partial<Record<Compression | 'none', string>> = {
  none: 'application/vnd.docker.image.rootfs.diff.tar',
  gzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
}
export const ociLayerMediaTypes: Partial<Record<Compression | 'none', string>> = {
  none: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
}

export interface SavedLayer {
  /** The blob pushed: the layer file, or what --layer-compression made of it. */
  digest: Digest
  size: number
  compression: Compression | undefined
  /** The digest of the plain tar, when known (a plain layer file, or one compressed on the way): the config's diff ID. */
  diffId: Digest | undefined
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

/** The manifest bytes and media type, or a reason the layers cannot be described (a compression no manifest has a type for). */
export function savedImageManifest(
  config: { digest: Digest; size: number },
  layers: SavedLayer[],
): { bytes: Buffer; mediaType: string } | string {
  const oci = layers.some((layer) => layer.compression === 'zstd')
  const types = oci ? ociLayerMediaTypes : dockerLayerMediaTypes
  const described = []
  for (const layer of layers) {
    const mediaType = types[layer.compression ?? 'none']
    if (mediaType === undefined) return `layer ${layer.digest} is ${layer.compression}-compressed, which an image manifest cannot describe`
    described.push({ mediaType, size: layer.size, digest: layer.digest })
  }
  const mediaType = oci ? mediaTypes.ociManifest : mediaTypes.dockerManifest
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: oci ? ociConfigMediaType : dockerConfigMediaType, size: config.size, digest: config.digest },
    layers: described,
  }
  // Docker's own indentation (three spaces), fixed key order.
  return { bytes: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType }
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
