// The bundles bench's inputs, made once and kept between runs: compressing 1.1 GiB with
// `xz -T0 -0` took ~10 minutes on the shared 2-core machine, longer than the measurements. Kept
// under bench/.cache/ (git-ignored; BENCH_CACHE_DIR elsewhere), in a folder named after what made
// them: the sizes asked for and the text of the generators, so a change to either makes new ones,
// and the folders of older generators are removed. A folder counts once its meta.json is written
// (it is built under a temporary name and renamed), and is made again when a file's size differs.
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { run } from '../../test/helpers/tools.js'
import { alive } from '../../src/bundle/spool.js'
import { writeBundleLayout, type BundleLayout } from './bundle-layout.js'
import { writeDockerSave } from './docker-save-real.js'
import { projectRoot } from './processes.js'
import { progress } from './stats.js'

export interface BenchBundles {
  /** The OCI layout folder, and the same as a tar, .tar.zst and .tar.xz. */
  layout: BundleLayout
  tar: string
  zst: string
  xz: string
  /** The docker save of real files as .tar.xz (its folder is not kept). */
  save: { images: number; blobBytes: number; largestBlob: number }
  saveXz: string
}

interface Meta {
  layout: Omit<BundleLayout, 'dir'>
  save: BenchBundles['save']
  /** Each file's size, checked before reuse. */
  sizes: Record<string, number>
}

// The files whose text decides the bundles' bytes (this one holds the compression commands).
const generators = [
  'bench/lib/bundle-cache.ts',
  'bench/lib/bundle-layout.ts',
  'bench/lib/docker-save-real.ts',
  'bench/lib/blobs.ts',
  'test/helpers/pseudo-random.ts',
]

function cacheRoot(): string {
  return process.env.BENCH_CACHE_DIR ?? join(projectRoot, 'bench', '.cache')
}

/** The bench's bundles of `images` images of `layersPerImage` layers, `totalBytes` in all: from the cache, or made and cached. */
export async function benchBundles(images: number, layersPerImage: number, totalBytes: number): Promise<BenchBundles> {
  const hash = createHash('sha256')
  for (const file of generators) hash.update(await readFile(join(projectRoot, file)))
  const version = hash.digest('hex').slice(0, 12)
  const root = cacheRoot()
  const name = `bundles-${version}-${images}x${layersPerImage}-${totalBytes}`
  const dir = join(root, name)
  await mkdir(root, { recursive: true })
  await pruneOthers(root, version)
  const cached = await reuse(dir)
  if (cached !== undefined) {
    progress(`bundles: reusing the bundles in ${dir}`)
    return cached
  }
  await rm(dir, { recursive: true, force: true })
  const temp = join(root, `${name}.tmp-${process.pid}`)
  await rm(temp, { recursive: true, force: true })
  await make(temp, images, layersPerImage, totalBytes)
  await rename(temp, dir)
  return (await reuse(dir))!
}

async function reuse(dir: string): Promise<BenchBundles | undefined> {
  let meta: Meta
  try {
    meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as Meta
  } catch {
    return undefined
  }
  for (const [file, size] of Object.entries(meta.sizes)) {
    const found = await stat(join(dir, file)).catch(() => undefined)
    if (found?.size !== size) return undefined
  }
  return {
    layout: { dir: join(dir, 'layout'), ...meta.layout },
    tar: join(dir, 'bundle.tar'),
    zst: join(dir, 'bundle.tar.zst'),
    xz: join(dir, 'bundle.tar.xz'),
    save: meta.save,
    saveXz: join(dir, 'save.tar.xz'),
  }
}

async function make(dir: string, images: number, layersPerImage: number, totalBytes: number): Promise<void> {
  progress(`bundles: writing a ${Math.round(totalBytes / 1048576)} MiB layout of ${images} images (kept in ${dir} for later runs)`)
  const { dir: layoutDir, ...layout } = await writeBundleLayout(join(dir, 'layout'), images, layersPerImage, totalBytes)
  const tar = join(dir, 'bundle.tar')
  await run('tar', ['-cf', tar, '-C', layoutDir, 'oci-layout', 'blobs', 'index.json'], { timeoutMs: 600_000 })
  progress('bundles: compressing with zstd and xz')
  await run('sh', ['-c', `zstd -q -T0 -3 -c "${tar}" > "${tar}.zst"`], { timeoutMs: 600_000 })
  await run('sh', ['-c', `xz -q -T0 -0 -c "${tar}" > "${tar}.xz"`], { timeoutMs: 1_200_000 })
  progress(`bundles: writing a docker save of real files, and its .tar.xz`)
  const saveDir = join(dir, 'save')
  const save = await writeDockerSave(saveDir, images, layersPerImage, totalBytes)
  const saveXz = join(dir, 'save.tar.xz')
  await run('sh', ['-c', `tar -cf - -C "${saveDir}" . | xz -q -T0 -0 -c > "${saveXz}"`], { timeoutMs: 1_200_000 })
  await rm(saveDir, { recursive: true, force: true })
  await rm(`${saveDir}.files.txt`, { force: true })
  const sizes: Record<string, number> = {}
  for (const file of ['bundle.tar', 'bundle.tar.zst', 'bundle.tar.xz', 'save.tar.xz', 'layout/index.json'])
    sizes[file] = (await stat(join(dir, file))).size
  const meta: Meta = { layout, save: { images, blobBytes: save.blobBytes, largestBlob: save.largestBlob }, sizes }
  await writeFile(join(dir, 'meta.json'), JSON.stringify(meta, null, 2))
}

/** Folders of other generator versions, and temporary folders of runs that did not finish. */
async function pruneOthers(root: string, version: string): Promise<void> {
  for (const name of await readdir(root)) {
    const pid = Number(/\.tmp-(\d+)$/.exec(name)?.[1])
    const stale = Number.isInteger(pid)
      ? pid !== process.pid && !alive(pid)
      : name.startsWith('bundles-') && !name.startsWith(`bundles-${version}-`)
    if (stale) await rm(join(root, name), { recursive: true, force: true })
  }
}
