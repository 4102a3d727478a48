// Builds image bundles for the bundle tests, offline and small: a two-platform index and a
// single-platform image made with umoci, written out by skopeo as an OCI layout folder, OCI
// archives and a legacy docker-archive, compressed with the system's gzip, xz, zstd and bzip2,
// a Docker-25-style save (OCI layout plus manifest.json) assembled by hand, and a tar of
// several archives.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  buildImage,
  gcLayout,
  imagePlatform,
  initLayout,
  readBlob,
  tagDescriptor,
  writeIndex,
  type Descriptor,
  type ImageManifest,
} from './oci-layout.js'
import { run } from './tools.js'

const KiB = 1024

export interface Bundles {
  dir: string
  /** The layout every bundle is made from (tags `multi`, `amd64`, `arm64`). */
  layout: string
  /** The two-platform index: its digest and exact bytes. */
  index: { digest: string; bytes: Buffer }
  /** The amd64 image manifest (also `single`). */
  amd64: { digest: string; bytes: Buffer; manifest: ImageManifest }
  arm64: { digest: string; manifest: ImageManifest }
  /** OCI layout folder: gcr.io/x/multi:2.0 (all platforms) and gcr.io/x/single:1.0. */
  ociFolder: string
  /** oci-archive tar of gcr.io/x/multi:2.0 with every platform, and compressed copies. */
  ociTar: string
  ociTarGz: string
  ociTarXz: string
  ociTarZst: string
  ociTarBz2: string
  /** docker-archive (legacy docker save, uncompressed layers) of amd64 as gcr.io/anthos-baremetal-release/foo:1.8.0. */
  dockerArchive: string
  /** A Docker 25+ style save of amd64: OCI layout (ref.name only a tag) plus manifest.json naming gcr.io/x/d25:1.0. */
  docker25Tar: string
  /** Shaped like a Zarf package (.tar.zst): zarf.yaml, checksums.txt, images/ (an OCI layout named by base.name), components/*.tar. */
  zarfPackage: string
  /** A tar holding images/legacy.tar.xz (the docker-archive) and images/single.tar.zst (oci-archive gcr.io/x/single:1.0). */
  nestedTar: string
}

export const names = {
  multi: 'gcr.io/x/multi:2.0',
  single: 'gcr.io/x/single:1.0',
  legacy: 'gcr.io/anthos-baremetal-release/foo:1.8.0',
  docker25: 'gcr.io/x/d25:1.0',
  zarf: 'ghcr.io/stefanprodan/podinfo:6.4.0',
} as const

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

export async function buildBundles(dir: string): Promise<Bundles> {
  const layout = join(dir, 'layout')
  const scratch = join(dir, 'scratch')
  await initLayout(layout)
  await buildImage(layout, 'amd64', { layerSizes: [96 * KiB, 8 * KiB], architecture: 'amd64' }, scratch)
  await buildImage(layout, 'arm64', { layerSizes: [64 * KiB], architecture: 'arm64' }, scratch)
  await gcLayout(layout)
  const withPlatform = async (tag: string): Promise<Descriptor> => {
    const descriptor = await tagDescriptor(layout, tag)
    const manifest = JSON.parse((await readBlob(layout, descriptor.digest)).toString('utf8')) as ImageManifest
    return { ...descriptor, platform: await imagePlatform(layout, manifest) }
  }
  const children = [await withPlatform('amd64'), await withPlatform('arm64')]
  const indexDescriptor = await writeIndex(layout, 'multi', children)
  const amd64Bytes = await readBlob(layout, children[0]!.digest)
  const arm64Bytes = await readBlob(layout, children[1]!.digest)

  const ociFolder = join(dir, 'oci-folder')
  await skopeo('copy', '--all', '--preserve-digests', `oci:${layout}:multi`, `oci:${ociFolder}:${names.multi}`)
  await skopeo('copy', '--preserve-digests', `oci:${layout}:amd64`, `oci:${ociFolder}:${names.single}`)

  const ociTar = join(dir, 'multi.tar')
  await skopeo('copy', '--all', '--preserve-digests', `oci:${layout}:multi`, `oci-archive:${ociTar}:${names.multi}`)
  const compressed = async (tool: string, args: string[], suffix: string): Promise<string> => {
    const out = `${ociTar}.${suffix}`
    await run('sh', ['-c', `${tool} ${args.join(' ')} < "${ociTar}" > "${out}"`])
    return out
  }

  const dockerArchive = join(dir, 'legacy.tar')
  await skopeo('copy', `oci:${layout}:amd64`, `docker-archive:${dockerArchive}:${names.legacy}`)

  const docker25Tar = await docker25Save(dir, layout)

  const nested = join(dir, 'nested')
  await mkdir(join(nested, 'images'), { recursive: true })
  await run('sh', ['-c', `xz -T0 -c "${dockerArchive}" > "${join(nested, 'images', 'legacy.tar.xz')}"`])
  const singleTar = join(dir, 'single.tar')
  await skopeo('copy', '--preserve-digests', `oci:${layout}:amd64`, `oci-archive:${singleTar}:${names.single}`)
  await run('sh', ['-c', `zstd -q -c "${singleTar}" > "${join(nested, 'images', 'single.tar.zst')}"`])
  await writeFile(join(nested, 'README.txt'), 'not an image\n')
  const nestedTar = join(dir, 'bundle.tar')
  await run('tar', ['-cf', nestedTar, '-C', nested, 'README.txt', 'images'])

  return {
    dir,
    layout,
    index: { digest: indexDescriptor.digest, bytes: await readBlob(layout, indexDescriptor.digest) },
    amd64: { digest: children[0]!.digest, bytes: amd64Bytes, manifest: JSON.parse(amd64Bytes.toString('utf8')) as ImageManifest },
    arm64: { digest: children[1]!.digest, manifest: JSON.parse(arm64Bytes.toString('utf8')) as ImageManifest },
    ociFolder,
    ociTar,
    ociTarGz: await compressed('gzip', ['-c'], 'gz'),
    ociTarXz: await compressed('xz', ['-T0', '-c'], 'xz'),
    ociTarZst: await compressed('zstd', ['-q', '-c'], 'zst'),
    ociTarBz2: await compressed('bzip2', ['-c'], 'bz2'),
    dockerArchive,
    docker25Tar,
    zarfPackage: await zarfPackage(dir, layout),
    nestedTar,
  }
}

/** What Docker 25+ writes: an OCI layout whose ref.name is only the tag, plus a manifest.json with RepoTags. */
async function docker25Save(dir: string, layout: string): Promise<string> {
  const folder = join(dir, 'docker25')
  await skopeo('copy', '--preserve-digests', `oci:${layout}:amd64`, `oci:${folder}:1.0`)
  const index = JSON.parse(await readFile(join(folder, 'index.json'), 'utf8')) as { manifests: Descriptor[] }
  const manifest = JSON.parse((await readBlob(folder, index.manifests[0]!.digest)).toString('utf8')) as ImageManifest
  const path = (digest: string): string => `blobs/sha256/${digest.slice('sha256:'.length)}`
  const saved = [{ Config: path(manifest.config.digest), RepoTags: [names.docker25], Layers: manifest.layers.map((l) => path(l.digest)) }]
  await writeFile(join(folder, 'manifest.json'), JSON.stringify(saved))
  const tar = join(dir, 'docker25.tar')
  // Docker writes manifest.json after the blobs; so does this (tar keeps the order given).
  await run('tar', ['-cf', tar, '-C', folder, 'oci-layout', 'blobs', 'index.json', 'manifest.json'])
  return tar
}

/** A Zarf-shaped package: the images' OCI layout under images/, named by org.opencontainers.image.base.name only. */
async function zarfPackage(dir: string, layout: string): Promise<string> {
  const root = join(dir, 'zarf')
  const images = join(root, 'images')
  await mkdir(root, { recursive: true })
  await skopeo('copy', '--preserve-digests', `oci:${layout}:amd64`, `oci:${images}:${names.zarf}`)
  const index = JSON.parse(await readFile(join(images, 'index.json'), 'utf8')) as { manifests: Descriptor[] }
  for (const d of index.manifests) d.annotations = { 'org.opencontainers.image.base.name': names.zarf }
  await writeFile(join(images, 'index.json'), JSON.stringify(index))
  await mkdir(join(root, 'components', 'main', 'files'), { recursive: true })
  await writeFile(join(root, 'components', 'main', 'files', 'config.yaml'), 'replicas: 1\n')
  await run('tar', ['-cf', join(root, 'components', 'main.tar'), '-C', join(root, 'components'), 'main'])
  await rm(join(root, 'components', 'main'), { recursive: true })
  await writeFile(
    join(root, 'zarf.yaml'),
    `kind: ZarfPackageConfig\nmetadata:\n  name: podinfo\ncomponents:\n  - name: main\n    images:\n      - ${names.zarf}\n`,
  )
  await run('sh', ['-c', `cd "${root}" && find . -type f ! -name checksums.txt | sort | xargs sha256sum > checksums.txt`])
  const out = join(dir, 'zarf-package-podinfo-amd64-1.0.0.tar.zst')
  await run('sh', ['-c', `tar -cf - -C "${root}" . | zstd -q -c > "${out}"`])
  return out
}

/** `head -c`: the first `fraction` of a file, as a transfer cut short leaves it. */
export async function truncated(file: string, fraction: number): Promise<string> {
  const bytes = await readFile(file)
  const out = `${file}.truncated`
  await writeFile(out, bytes.subarray(0, Math.floor(bytes.length * fraction)))
  return out
}
