// A small, deterministic OCI image (config + layers of a few KiB) pushed through the API, so two
// registries seeded alike serve byte-identical manifests under the same digest.
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { mediaTypes } from '../../src/core/media-types.js'
import { PseudoRandomSource } from '../../test/helpers/pseudo-random.js'
import { pushManifest, pushMonolithic } from './http.js'
import type { Server } from './processes.js'

export interface SmallImage {
  manifest: Buffer
  digest: string
  mediaType: string
  blobs: Array<{ digest: string; bytes: Buffer; mediaType: string }>
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}

/** An image like a small real one: a config and `layers` layers (descriptors of 2–17 KiB blobs). */
export function smallImage(seed: string, layers = 8): SmallImage {
  const source = new PseudoRandomSource(seed)
  const layerBlobs = Array.from({ length: layers }, (_, i) => {
    const bytes = source.next(2048 + i * 2048)
    return { digest: sha256(bytes), bytes, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }
  })
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/app'] },
      rootfs: { type: 'layers', diff_ids: layerBlobs.map((l) => l.digest) },
    }),
  )
  const configBlob = { digest: sha256(config), bytes: config, mediaType: 'application/vnd.oci.image.config.v1+json' }
  const descriptor = (b: { digest: string; bytes: Buffer; mediaType: string }) => ({
    mediaType: b.mediaType,
    digest: b.digest,
    size: b.bytes.length,
  })
  const manifest = Buffer.from(
    JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: descriptor(configBlob),
        layers: layerBlobs.map(descriptor),
        annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
      },
      null,
      2,
    ),
  )
  return { manifest, digest: sha256(manifest), mediaType: mediaTypes.ociManifest, blobs: [configBlob, ...layerBlobs] }
}

export async function pushImage(server: Server, repo: string, tag: string, image: SmallImage): Promise<void> {
  for (const blob of image.blobs) await pushMonolithic(server, repo, blob.digest, blob.bytes.length, () => Readable.from([blob.bytes]))
  await pushManifest(server, repo, tag, image.manifest, image.mediaType)
}
