// The files of a bundle as one sequence of entries, whether they come from a tar stream (read
// once, in order) or from a folder (files that can be read again).
import { createReadStream } from 'node:fs'
import { lstat, readdir, readlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { Readable } from 'node:stream'
import { extract } from 'tar-stream'

export interface Entry {
  /** The path inside the archive or folder, normalised: no `./`, no leading or trailing `/`. */
  path: string
  kind: 'file' | 'symlink' | 'other'
  size: number
  /** A symlink's target (a hard link's too: both name another entry). */
  linkname?: string
  /** The content. From a tar it can be read once, and must be read or drained before the next entry. */
  read(): AsyncIterable<Buffer>
  /** Skips whatever of the content was not read. */
  drain(): Promise<void>
  /** A folder's file: it can be opened again for an upload, and need not be copied anywhere. */
  file?: string
  /** With `file`: the bytes lie in it at [start, end) (a file inside a plain tar file, tar-file.ts). */
  range?: { start: number; end: number }
}

export function normalisePath(path: string): string {
  const normal = posix.normalize(`/${path}`).replace(/^\/+|\/+$/g, '')
  return normal
}

/** The entries of a tar stream. Throws when the tar is truncated or malformed (or `input` fails). */
export async function* tarEntries(input: Readable): AsyncGenerator<Entry> {
  const tar = extract()
  input.once('error', (err) => tar.destroy(err))
  input.pipe(tar as unknown as NodeJS.WritableStream)
  try {
    for await (const source of tar) {
      const { header } = source
      // One iterator per entry, never returned early: destroying an entry would end the whole
      // archive, and a nested archive that fails must leave its parent readable.
      const iterator = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
      let finished = false
      const next = async (): Promise<IteratorResult<Buffer>> => {
        if (finished) return { done: true, value: undefined }
        const result = await iterator.next()
        if (result.done === true) finished = true
        return result
      }
      const chunks: AsyncIterator<Buffer> = { next, return: async () => ({ done: true, value: undefined }) }
      const read = (): AsyncIterable<Buffer> => ({ [Symbol.asyncIterator]: () => chunks })
      const drain = async (): Promise<void> => {
        while (!finished) await next()
      }
      const kind = header.type === 'file' || header.type === 'contiguous-file' ? 'file' : header.type.endsWith('link') ? 'symlink' : 'other'
      const entry: Entry = { path: normalisePath(header.name), kind, size: header.size, read, drain }
      if (kind === 'symlink') entry.linkname = header.type === 'link' ? `/${normalisePath(header.linkname)}` : header.linkname
      yield entry
      await drain()
    }
  } finally {
    input.unpipe(tar as unknown as NodeJS.WritableStream)
    if (!input.readableEnded) input.destroy()
  }
}

/** The files of a folder, depth first in name order; symlinks are reported, not followed. */
export async function* folderEntries(root: string, under = ''): AsyncGenerator<Entry> {
  const names = (await readdir(join(root, under))).sort()
  for (const name of names) {
    const path = under === '' ? name : `${under}/${name}`
    const file = join(root, path)
    const stats = await lstat(file)
    if (stats.isDirectory()) {
      yield* folderEntries(root, path)
      continue
    }
    const noop = async (): Promise<void> => {}
    if (stats.isSymbolicLink()) {
      yield { path, kind: 'symlink', size: 0, linkname: await readlink(file), read: () => emptyIterable(), drain: noop }
      continue
    }
    if (!stats.isFile()) continue
    yield { path, kind: 'file', size: stats.size, file, read: () => createReadStream(file), drain: noop }
  }
}

async function* emptyIterable(): AsyncGenerator<Buffer> {}

/** A folder's file, or a tar file's entry, read again. */
export function reopenEntry(entry: Entry): Readable {
  if (entry.range === undefined) return createReadStream(entry.file!)
  const { start, end } = entry.range
  return end > start ? createReadStream(entry.file!, { start, end: end - 1, highWaterMark: 1024 * 1024 }) : Readable.from([])
}
