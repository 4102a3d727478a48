// Manifest parsing and validation. Manifests are stored and served byte-exact: this module
// only reads them to learn what they reference, never re-serialises them.
import { tryParseDigest, type Digest } from './digest.js'
import { RegistryError, type ErrorDetail } from './errors.js'
import { baseMediaType, isIndexMediaType, isManifestMediaType, mediaTypes } from './media-types.js'

export interface Descriptor {
  mediaType: string
  digest: Digest
  size: number
  artifactType?: string
  annotations?: Record<string, string>
  urls?: string[]
  platform?: Record<string, unknown>
}

export interface ParsedManifest {
  mediaType: string
  /** Blobs the manifest needs in the same repository: config and layers (foreign layers excluded). */
  blobs: Descriptor[]
  /** Child manifests of an index / manifest list. */
  manifests: Descriptor[]
  subject?: Descriptor
  /** The artifactType the referrers API reports: explicit, else the config's media type. */
  artifactType?: string
  annotations?: Record<string, string>
}

/** Registries must accept manifests of at least 4 MiB; larger ones are refused with 413. */
export const maxManifestBytes = 4 * 1024 * 1024

function invalid(message: string, detail?: ErrorDetail): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, detail)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} is not a descriptor`)
  const { mediaType, digest, size, artifactType, annotations, urls, platform } = value
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}.mediaType is missing`)
  const parsed = typeof digest === 'string' ? tryParseDigest(digest) : undefined
  if (!parsed) throw invalid(`${where}.digest is not a valid digest`, { digest })
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`)
  }
  const descriptor: Descriptor = { mediaType, digest: parsed, size }
  if (typeof artifactType === 'string') descriptor.artifactType = artifactType
  if (isObject(annotations)) descriptor.annotations = annotations as Record<string, string>
  if (Array.isArray(urls)) descriptor.urls = urls.filter((u): u is string => typeof u === 'string')
  if (isObject(platform)) descriptor.platform = platform
  return descriptor
}

function parseDescriptorList(value: unknown, where: string): Descriptor[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw invalid(`${where} must be an array`)
  return value.map((item, i) => parseDescriptor(item, `${where}[${i}]`))
}

// Layers with URLs and a foreign/non-distributable type live elsewhere by design: like CNCF
// distribution, we do not require them to have been pushed.
function isForeignLayer(layer: Descriptor): boolean {
  return (
    (layer.urls?.length ?? 0) > 0 &&
    (layer.mediaType === 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip' ||
      layer.mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.'))
  )
}

/**
 * Decides the manifest's media type from the request's Content-Type and the document's own
 * `mediaType` field; they must agree when both are present.
 */
function decideMediaType(contentType: string, document: Record<string, unknown>): string {
  const declared = typeof document.mediaType === 'string' ? document.mediaType : undefined
  const header = baseMediaType(contentType)
  const headerIsManifest = isManifestMediaType(header)
  if (declared !== undefined && headerIsManifest && declared !== header) {
    throw invalid('manifest mediaType does not match Content-Type', { mediaType: declared, contentType: header })
  }
  const chosen = headerIsManifest ? header : declared
  if (chosen === mediaTypes.dockerSchema1 || chosen === mediaTypes.dockerSchema1Signed || header.includes('v1+prettyjws')) {
    throw new RegistryError('MANIFEST_INVALID', 'Docker schema 1 manifests are not supported', undefined, { status: 415 })
  }
  if (chosen !== undefined) {
    if (!isManifestMediaType(chosen)) {
      throw new RegistryError('MANIFEST_INVALID', 'unsupported manifest media type', { mediaType: chosen }, { status: 415 })
    }
    return chosen
  }
  // OCI makes mediaType optional in the document: infer from the shape.
  if (Array.isArray(document.manifests)) return mediaTypes.ociIndex
  if (isObject(document.config)) return mediaTypes.ociManifest
  throw invalid('cannot determine manifest media type')
}

/** Parses and validates manifest bytes. Throws MANIFEST_INVALID (400) or 415 for unsupported types. */
export function parseManifest(bytes: Uint8Array, contentType: string): ParsedManifest {
  let document: unknown
  try {
    document = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch {
    throw invalid('manifest is not valid JSON')
  }
  if (!isObject(document)) throw invalid('manifest is not a JSON object')
  if (document.schemaVersion !== 2) throw invalid('schemaVersion must be 2', { schemaVersion: document.schemaVersion })
  const mediaType = decideMediaType(contentType, document)

  const parsed: ParsedManifest = { mediaType, blobs: [], manifests: [] }
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(document.manifests)) throw invalid('an index must have a manifests array')
    parsed.manifests = parseDescriptorList(document.manifests, 'manifests')
  } else {
    const config = parseDescriptor(document.config, 'config')
    if (!Array.isArray(document.layers)) throw invalid('an image manifest must have a layers array')
    const layers = parseDescriptorList(document.layers, 'layers')
    parsed.blobs = [config, ...layers.filter((layer) => !isForeignLayer(layer))]
    parsed.artifactType = typeof document.artifactType === 'string' ? document.artifactType : config.mediaType
  }
  if (isIndexMediaType(mediaType) && typeof document.artifactType === 'string') {
    parsed.artifactType = document.artifactType
  }
  if (document.subject !== undefined) parsed.subject = parseDescriptor(document.subject, 'subject')
  if (isObject(document.annotations)) parsed.annotations = document.annotations as Record<string, string>
  return parsed
}
