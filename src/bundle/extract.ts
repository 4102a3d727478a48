// `ferry extract`: what an image carries, written into a folder. Container image layers are
// applied in order, as a container runtime unpacks them: `.wh.<name>` deletes what a lower layer
// put there, `.wh..wh..opq` empties a folder of what lower layers put in it. Nothing is written
// outside the target: `..` in an entry's path is refused, absolute paths are taken relative to
// the target, and symlinks placed by earlier entries are resolved as if the target were `/`
// (resolveInside), so neither a symlink nor a hard link reaches out. Device files and FIFOs are
// skipped, and ownership is applied only when running as root. Artifact layers that carry
// `org.opencontainers.image.title` are written as files of that name.
import { constants } from 'node:fs'
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rm, symlink } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { extract as tarExtract, type Header } from 'tar-stream'
import { parseManifest, type Descriptor } from '../core/manifest.js'
import { isIndexMediaType } from '../core/media-types.js'
import { decompress } from './decompress.js'
import { peek } from './head-stream.js'
import type { ResolvedImage } from './image-graph.js'
import { isCompression, sniff, sniffLength } from './magic.js'

export const titleAnnotation = 'org.opencontainers.image.title'
const maxSymlinkHops = 40
const whiteoutPrefix = '.wh.'
const opaqueWhiteout = '.wh..wh..opq'

export interface ExtractOptions {
  /** Apply owners from the layers (only root can). */
  asRoot: boolean
}

export interface ExtractReport {
  layers: number
  /** Files written as artifacts, by title. */
  files: string[]
  /** Entries not written, and why. */
  skipped: Array<{ path: string; reason: string }>
}

export interface ExtractSource {
  image: ResolvedImage
  openBlob(descriptor: Descriptor): Promise<Readable>
}

export async function extractImage(source: ExtractSource, target: string, options: ExtractOptions): Promise<ExtractReport> {
  const { root } = source.image
  if (isIndexMediaType(root.mediaType)) throw new Error(`${root.digest} is an index: choose a platform`)
  const [, ...layers] = parseManifest(root.bytes, root.mediaType).blobs
  await mkdir(target, { recursive: true })
  const report: ExtractReport = { layers: 0, files: [], skipped: [] }
  const directories = new Map<string, number>()
  for (const layer of layers) {
    const title = layer.annotations?.[titleAnnotation]
    if (title !== undefined) {
      await writeArtifactFile(source, layer, title, target, report)
      continue
    }
    if (!/tar/.test(layer.mediaType)) {
      report.skipped.push({
        path: layer.digest,
        reason: `a ${layer.mediaType} layer without a title is neither a file tree nor a named file`,
      })
      continue
    }
    await applyLayer(await source.openBlob(layer), target, options, report, directories)
    report.layers++
  }
  // Folders were kept writable while their content was written; now they get their own modes, deepest first.
  for (const [path, mode] of [...directories].sort((a, b) => b[0].length - a[0].length)) await chmod(path, mode).catch(() => undefined)
  return report
}

async function writeArtifactFile(
  source: ExtractSource,
  layer: Descriptor,
  title: string,
  target: string,
  report: ExtractReport,
): Promise<void> {
  const parts = pathParts(title)
  if (parts === undefined || parts.length === 0) {
    report.skipped.push({ path: title, reason: 'the title climbs out of the target ("..") or is empty' })
    return
  }
  const parent = await resolveInside(target, parts.slice(0, -1), true)
  const path = join(parent, parts.at(-1)!)
  await removeExisting(path, false)
  await pipeline(await source.openBlob(layer), await createExclusive(path, 0o644))
  report.files.push(relative(target, path))
}

/** The components of an entry's path, `/` and `.` dropped; undefined when one is `..`. */
function pathParts(path: string): string[] | undefined {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.')
  return parts.includes('..') ? undefined : parts
}

async function applyLayer(
  blob: Readable,
  target: string,
  options: ExtractOptions,
  report: ExtractReport,
  directories: Map<string, number>,
): Promise<void> {
  const { head, stream } = await peek(blob, sniffLength)
  const kind = sniff(head)
  const tar = isCompression(kind) ? decompress(kind, stream, 'layer') : stream
  const extractor = tarExtract()
  tar.once('error', (err) => extractor.destroy(err))
  tar.pipe(extractor as unknown as NodeJS.WritableStream)
  // What this layer wrote: an opaque whiteout keeps these and deletes the rest.
  const written = new Set<string>()
  let inEntry = false
  try {
    for await (const entry of extractor) {
      inEntry = true
      try {
        await applyEntry(entry.header, entry as AsyncIterable<Buffer>, target, options, report, written, directories)
      } finally {
        // Whatever was not read of the entry is skipped.
        entry.resume()
      }
      inEntry = false
    }
  } catch (err) {
    // Some tools (umoci among them) end a layer right after its last entry, without the zero
    // blocks; the layer's digest has vouched for its bytes, and no entry was cut short.
    if (inEntry || (err as Error).message !== 'Unexpected end of data') throw err
  }
}

async function applyEntry(
  header: Header,
  content: AsyncIterable<Buffer>,
  target: string,
  options: ExtractOptions,
  report: ExtractReport,
  written: Set<string>,
  directories: Map<string, number>,
): Promise<void> {
  const parts = pathParts(header.name)
  if (parts === undefined) return void report.skipped.push({ path: header.name, reason: 'the path climbs out of the target ("..")' })
  if (parts.length === 0) return
  const base = parts.at(-1)!
  const folder = parts.slice(0, -1)
  if (base === opaqueWhiteout) {
    const dir = await resolveInside(target, folder, false).catch(() => undefined)
    if (dir === undefined) return
    for (const name of await readdir(dir)) {
      const child = join(dir, name)
      if (!written.has(child)) await rm(child, { recursive: true, force: true })
    }
    return
  }
  if (base.startsWith(whiteoutPrefix)) {
    const name = base.slice(whiteoutPrefix.length)
    if (name === '' || name === '.' || name === '..')
      return void report.skipped.push({ path: header.name, reason: 'not a whiteout of a name' })
    const dir = await resolveInside(target, folder, false).catch(() => undefined)
    // rm never follows a symlink it removes: the link goes, not what it names.
    if (dir !== undefined) await rm(join(dir, name), { recursive: true, force: true })
    return
  }
  if (header.type === 'character-device' || header.type === 'block-device' || header.type === 'fifo') {
    return void report.skipped.push({ path: header.name, reason: `${header.type} entries are not extracted` })
  }
  const parent = await resolveInside(target, folder, true)
  const path = join(parent, base)
  written.add(path)
  const mode = header.mode & (options.asRoot ? 0o7777 : 0o777)
  switch (header.type) {
    case 'directory':
      await removeExisting(path, true)
      await mkdir(path, { recursive: true, mode: 0o700 })
      await chmod(path, mode | 0o700)
      directories.set(path, mode)
      break
    case 'file':
    case 'contiguous-file':
      await removeExisting(path, false)
      // Through a generator: a pipeline destroys a stream source when done, and destroying a tar
      // entry ends the whole archive.
      await pipeline(chunks(content), await createExclusive(path, mode))
      await chmod(path, mode)
      break
    case 'symlink':
      await removeExisting(path, false)
      // Its target is only text: it is never followed while extracting (resolveInside confines it).
      await symlink(header.linkname ?? '', path)
      break
    case 'link': {
      const source = pathParts(header.linkname ?? '')
      if (source === undefined || source.length === 0) {
        return void report.skipped.push({ path: header.name, reason: `a hard link to ${header.linkname} outside the target` })
      }
      const from = join(await resolveInside(target, source.slice(0, -1), false), source.at(-1)!)
      const stats = await lstat(from).catch(() => undefined)
      if (stats === undefined || stats.isDirectory()) {
        return void report.skipped.push({ path: header.name, reason: `a hard link to ${header.linkname}, which is not a file here` })
      }
      await removeExisting(path, false)
      await link(from, path)
      break
    }
    default:
      return void report.skipped.push({ path: header.name, reason: `${header.type} entries are not extracted` })
  }
  if (options.asRoot) await lchown(path, header.uid, header.gid)
  if (header.type !== 'directory' && header.mtime !== undefined) await lutimes(path, header.mtime, header.mtime).catch(() => undefined)
}

/**
 * The real path of folder `parts` under `root`, resolved as if `root` were `/`: symlinks met on
 * the way are followed by their text (an absolute target starts again at `root`, `..` stops at
 * it), never by the system, so no path leaves `root`. With `create`, missing folders are made and
 * a non-folder in the way is replaced.
 */
export async function resolveInside(root: string, parts: string[], create: boolean): Promise<string> {
  let current = root
  const queue = [...parts]
  let hops = 0
  while (queue.length > 0) {
    const part = queue.shift()!
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (current !== root) current = dirname(current)
      continue
    }
    const next = join(current, part)
    const stats = await lstat(next).catch(() => undefined)
    if (stats?.isSymbolicLink() === true) {
      if (++hops > maxSymlinkHops) throw new Error(`${relative(root, next)}: too many levels of symbolic links`)
      const target = await readlink(next)
      if (target.startsWith('/')) current = root
      queue.unshift(...target.split('/'))
      continue
    }
    if (stats?.isDirectory() !== true) {
      if (!create) throw new Error(`${relative(root, next)}: no such folder`)
      if (stats !== undefined) await rm(next, { force: true })
      await mkdir(next, { mode: 0o755 })
    }
    current = next
  }
  return current
}

/** Makes room for a new entry at `path`: anything there goes, but a folder stays for a folder. */
async function removeExisting(path: string, keepDirectory: boolean): Promise<void> {
  const stats = await lstat(path).catch(() => undefined)
  if (stats === undefined) return
  if (stats.isDirectory() && keepDirectory) return
  await rm(path, { recursive: true, force: true })
}

async function* chunks(content: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of content) yield chunk
}

/** Opens a new file for writing; fails rather than follow a symlink or reuse what is there. */
async function createExclusive(path: string, mode: number): Promise<NodeJS.WritableStream> {
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  return handle.createWriteStream()
}
