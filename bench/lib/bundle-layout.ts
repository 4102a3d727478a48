// A multi-image OCI layout of incompressible layers for the bundles bench, written without umoci:
// each layer is a gzip stream of stored (level 0) blocks around pseudo-random bytes, so skopeo
// sees real gzip layers and keeps them as they are, and building a GiB takes seconds. One base
// layer is shared by every image, as real bundles share their base images.
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { mediaTypes } from '../../src/core/media-types.js'
import { randomBlob } from './blobs.js'

export interface BundleImage {
  /** The name in index.json (`gcr.io/bench/app-0:1.0`). */
  name: string
  /** Where it lands under the namespace (`bench/app-0:1.0`). */
  path: string
  digest: string
}

export interface BundleLayout {
  dir: string
  images: BundleImage[]
  /** Distinct blob bytes in the layout (what a push of all of it uploads). */
  blobBytes: number
  largestBlob: number
}

const MiB = 1024 * 1024

/** `images` images of a shared base layer plus `layersPerImage` own layers, `totalBytes` in all. */
export async function writeBundleLayout(dir: string, images: number, layersPerImage: number, totalBytes: number): Promise<BundleLayout> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  const layerBytes = Math.max(MiB, Math.floor(totalBytes / (images * layersPerImage + 1)))
  let blobBytes = 0
  let largestBlob = 0
  const putBytes = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(bytes).digest('hex')
    await writeFile(join(dir, 'blobs', 'sha256', hex), bytes)
    blobBytes += bytes.length
    return { digest: `sha256:${hex}`, size: bytes.length }
  }
  const putLayer = async (seed: string): Promise<{ digest: string; size: number; diffId: string }> => {
    const temp = join(dir, 'blobs', 'layer.tmp')
    const hash = createHash('sha256')
    const diff = createHash('sha256')
    let size = 0
    const counting = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk)
        size += chunk.length
        callback(null, chunk)
      },
    })
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        diff.update(chunk)
        callback(null, chunk)
      },
    })
    await pipeline(randomBlob(seed, layerBytes), hashing, createGzip({ level: 0 }), counting, createWriteStream(temp))
    const hex = hash.digest('hex')
    await rename(temp, join(dir, 'blobs', 'sha256', hex))
    blobBytes += size
    largestBlob = Math.max(largestBlob, size)
    return { digest: `sha256:${hex}`, size, diffId: `sha256:${diff.digest('hex')}` }
  }
  const base = await putLayer('bundle-base')
  const listed: Array<{ mediaType: string; digest: string; size: number; annotations: Record<string, string> }> = []
  const out: BundleImage[] = []
  for (let i = 0; i < images; i++) {
    const layers = [base]
    for (let l = 0; l < layersPerImage; l++) layers.push(await putLayer(`bundle-${i}-${l}`))
    const config = await putBytes(
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Cmd: [`/bin/app-${i}`] },
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        }),
      ),
    )
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      }),
    )
    const stored = await putBytes(manifest)
    const name = `gcr.io/bench/app-${i}:1.0`
    listed.push({ mediaType: mediaTypes.ociManifest, ...stored, annotations: { 'org.opencontainers.image.ref.name': name } })
    out.push({ name, path: `bench/app-${i}:1.0`, digest: stored.digest })
  }
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: listed }))
  return { dir, images: out, blobBytes, largestBlob }
}
