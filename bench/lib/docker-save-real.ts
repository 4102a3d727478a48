// A legacy `docker save` folder whose layers are uncompressed tars of real files (the system's
// /usr/lib and /usr/share, in name order), for the bundles bench: real bundles of this kind
// compress (xz decodes them at tens to a few hundred MB/s), unlike the random layers of
// bundle-layout.ts, which xz stores and decodes at memcpy speed. Deterministic on one machine:
// the files are taken in sorted order and tarred with fixed times, owners and order. One base
// layer is shared by every image, as in bundle-layout.ts.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from '../../test/helpers/tools.js'

export interface DockerSave {
  dir: string
  images: Array<{ name: string; path: string }>
  /** The layer and config bytes (what a push uploads). */
  blobBytes: number
  largestBlob: number
}

const roots = ['/usr/lib', '/usr/share']
// Larger files are left out, so that the layers come out of similar sizes.
const maxFile = 8 * 1024 * 1024

/** Regular files under `roots`, in name order, until `bytes` of them are listed. */
async function realFiles(bytes: number): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = []
  let total = 0
  const walk = async (dir: string): Promise<void> => {
    let names: string[]
    try {
      names = (await readdir(dir)).sort()
    } catch {
      return
    }
    for (const name of names) {
      if (total >= bytes) return
      const path = join(dir, name)
      const stats = await lstat(path).catch(() => undefined)
      if (stats === undefined) continue
      if (stats.isDirectory()) await walk(path)
      else if (stats.isFile() && stats.size > 0 && stats.size <= maxFile) {
        out.push({ path: path.slice(1), size: stats.size })
        total += stats.size
      }
    }
  }
  for (const root of roots) await walk(root)
  if (total < bytes) throw new Error(`only ${total} bytes of files under ${roots.join(', ')}; ${bytes} wanted`)
  return out
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** `images` images of a shared base layer plus `layersPerImage` own layers, about `totalBytes` of layers in all. */
export async function writeDockerSave(dir: string, images: number, layersPerImage: number, totalBytes: number): Promise<DockerSave> {
  await mkdir(dir, { recursive: true })
  const layerCount = images * layersPerImage + 1
  const files = await realFiles(totalBytes)
  const perLayer = totalBytes / layerCount
  const groups: string[][] = []
  let current: string[] = []
  let size = 0
  for (const file of files) {
    current.push(file.path)
    size += file.size
    if (size >= perLayer && groups.length < layerCount - 1) {
      groups.push(current)
      current = []
      size = 0
    }
  }
  groups.push(current)
  let blobBytes = 0
  let largestBlob = 0
  const layers: Array<{ path: string; diffId: string }> = []
  for (const [i, group] of groups.entries()) {
    const list = `${dir}.files.txt`
    await writeFile(list, group.join('\n') + '\n')
    const temp = join(dir, 'layer.tmp')
    await run(
      'tar',
      ['-cf', temp, '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', '/', '-T', list],
      { timeoutMs: 600_000 },
    )
    const hex = await sha256File(temp)
    await mkdir(join(dir, hex), { recursive: true })
    await rename(temp, join(dir, hex, 'layer.tar'))
    const bytes = (await lstat(join(dir, hex, 'layer.tar'))).size
    blobBytes += bytes
    largestBlob = Math.max(largestBlob, bytes)
    layers.push({ path: `${hex}/layer.tar`, diffId: `sha256:${hex}` })
    if (i === groups.length - 1) await rm(list, { force: true })
  }
  const [base, ...own] = layers
  const manifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = []
  const out: DockerSave['images'] = []
  for (let i = 0; i < images; i++) {
    const imageLayers = [base!, ...own.slice(i * layersPerImage, (i + 1) * layersPerImage)]
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: [`/bin/app-${i}`] },
        rootfs: { type: 'layers', diff_ids: imageLayers.map((l) => l.diffId) },
      }),
    )
    const configHex = createHash('sha256').update(config).digest('hex')
    await writeFile(join(dir, `${configHex}.json`), config)
    blobBytes += config.length
    const name = `gcr.io/bench/save-${i}:1.0`
    manifest.push({ Config: `${configHex}.json`, RepoTags: [name], Layers: imageLayers.map((l) => l.path) })
    out.push({ name, path: `bench/save-${i}:1.0` })
  }
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest))
  return { dir, images: out, blobBytes, largestBlob }
}
