// Seeds a registry over plain HTTP (fetch) with blobs, images and indexes built on the spot,
// keeping the exact manifest bytes so tests can compare byte-for-byte.
import { createHash, randomBytes } from 'node:crypto'
import { mediaTypes } from '../../src/core/media-types.js'

export interface BasicCredentials {
  username: string
  password: string
}

export interface SeededBlob {
  digest: string
  size: number
  mediaType: string
  bytes: Buffer
}

export interface SeededManifest {
  digest: string
  size: number
  mediaType: string
  bytes: Buffer
}

export interface SeededImage {
  manifest: SeededManifest
  config: SeededBlob
  layers: SeededBlob[]
}

export const layerMediaType = 'application/vnd.oci.image.layer.v1.tar+gzip'
const dockerLayerMediaType = 'application/vnd.docker.image.rootfs.diff.tar.gzip'

export function sha256(bytes: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

function authHeaders(auth: BasicCredentials | undefined): Record<string, string> {
  return auth ? { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` } : {}
}

async function expectStatus(response: Response, expected: number, what: string): Promise<void> {
  if (response.status !== expected) throw new Error(`${what}: expected ${expected}, got ${response.status}: ${await response.text()}`)
  await response.arrayBuffer()
}

/** Monolithic upload: POST an upload session, then PUT the bytes with `?digest=`. */
export async function pushBlob(registry: string, repo: string, bytes: Buffer, auth?: BasicCredentials): Promise<string> {
  const digest = sha256(bytes)
  const started = await fetch(`${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: authHeaders(auth) })
  const location = started.headers.get('location')
  await expectStatus(started, 202, `POST ${repo} upload`)
  const url = new URL(location ?? '', registry)
  url.searchParams.set('digest', digest)
  const put = await fetch(url, {
    method: 'PUT',
    headers: { ...authHeaders(auth), 'content-type': 'application/octet-stream' },
    body: bytes,
  })
  await expectStatus(put, 201, `PUT ${repo} blob ${digest}`)
  return digest
}

export async function pushManifest(
  registry: string,
  repo: string,
  reference: string,
  bytes: Buffer,
  mediaType: string,
  auth?: BasicCredentials,
): Promise<string> {
  const response = await fetch(`${registry}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { ...authHeaders(auth), 'content-type': mediaType },
    body: bytes,
  })
  await expectStatus(response, 201, `PUT ${repo} manifest ${reference}`)
  return sha256(bytes)
}

export interface SeedImageOptions {
  /** Layer contents; default one random 1 KiB layer. */
  layers?: Buffer[]
  /** `oci` (default) or `docker` (schema 2). */
  format?: 'oci' | 'docker'
  auth?: BasicCredentials
  /** Skip tagging: push by digest only. */
  untagged?: boolean
  platform?: { architecture: string; os: string }
}

/** Pushes config, layers and an image manifest; tags it `tag` unless `untagged`. */
export async function seedImage(registry: string, repo: string, tag: string, options: SeedImageOptions = {}): Promise<SeededImage> {
  const docker = options.format === 'docker'
  const platform = options.platform ?? { architecture: 'amd64', os: 'linux' }
  const layerBytes = options.layers ?? [randomBytes(1024)]
  const configBytes = Buffer.from(
    JSON.stringify({
      ...platform,
      rootfs: { type: 'layers', diff_ids: layerBytes.map((b) => sha256(b)) },
      nonce: randomBytes(8).toString('hex'),
    }),
  )
  const config: SeededBlob = {
    bytes: configBytes,
    digest: sha256(configBytes),
    size: configBytes.length,
    mediaType: docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
  }
  const layers = layerBytes.map((bytes) => ({
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    mediaType: docker ? dockerLayerMediaType : layerMediaType,
  }))
  for (const blob of [config, ...layers]) await pushBlob(registry, repo, blob.bytes, options.auth)
  const mediaType = docker ? mediaTypes.dockerManifest : mediaTypes.ociManifest
  const descriptor = ({ mediaType: m, digest, size }: SeededBlob) => ({ mediaType: m, digest, size })
  // Indented on purpose: byte-exact serving must not be confused with re-serialising compactly.
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType, config: descriptor(config), layers: layers.map(descriptor) }, null, 3),
  )
  const manifest: SeededManifest = { bytes, digest: sha256(bytes), size: bytes.length, mediaType }
  await pushManifest(registry, repo, options.untagged ? manifest.digest : tag, bytes, mediaType, options.auth)
  return { manifest, config, layers }
}

/** Pushes an index (OCI, or a Docker manifest list) over already pushed images and tags it. */
export async function seedIndex(
  registry: string,
  repo: string,
  tag: string,
  images: SeededImage[],
  options: { format?: 'oci' | 'docker'; auth?: BasicCredentials } = {},
): Promise<SeededManifest> {
  const mediaType = options.format === 'docker' ? mediaTypes.dockerManifestList : mediaTypes.ociIndex
  const manifests = images.map((image, i) => ({
    mediaType: image.manifest.mediaType,
    digest: image.manifest.digest,
    size: image.manifest.size,
    platform: { architecture: i === 0 ? 'amd64' : `arch${i}`, os: 'linux' },
  }))
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, manifests }, null, 2))
  await pushManifest(registry, repo, tag, bytes, mediaType, options.auth)
  return { bytes, digest: sha256(bytes), size: bytes.length, mediaType }
}
