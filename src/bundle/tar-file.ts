// The entries of a plain (uncompressed) tar file, read by position: only the 512-byte headers are
// read while the archive is scanned, and each file's bytes can be read later, and again, from
// where they lie in the archive. A push then uploads blobs straight from the bundle file (as from
// a folder) instead of copying them through the spool: the bytes are read once, by the upload.
// ustar, pax (`path`, `linkpath`, `size` records) and GNU long names are understood.
import { createReadStream } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import type { Entry } from './entries.js'
import { normalisePath } from './entries.js'
import { sniff, sniffLength, type ArchiveKind } from './magic.js'

const block = 512

export async function* tarFileEntries(path: string): AsyncGenerator<Entry> {
  const handle = await open(path, 'r')
  try {
    const { size: fileSize } = await handle.stat()
    let position = 0
    let pax: Record<string, string> = {}
    let globalPax: Record<string, string> = {}
    let longName: string | undefined
    let longLink: string | undefined
    for (;;) {
      const header = await readExactly(handle, position, block, path)
      if (header.every((byte) => byte === 0)) return
      if (!validChecksum(header)) throw new Error(`${path}: corrupt tar header at byte ${position}`)
      const type = String.fromCharCode(header[156]!)
      const records = { ...globalPax, ...pax }
      const size = records.size !== undefined ? Number(records.size) : parseNumber(header.subarray(124, 136))
      const start = position + block
      const end = start + size
      if (!Number.isSafeInteger(size) || size < 0) throw new Error(`${path}: corrupt tar header at byte ${position}`)
      if (end > fileSize) throw new Error(`${path}: the tar archive is truncated (an entry ends at byte ${end}, the file at ${fileSize})`)
      position = start + Math.ceil(size / block) * block
      if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
        const data = await readExactly(handle, start, size, path)
        if (type === 'x') pax = parsePax(data)
        else if (type === 'g') globalPax = { ...globalPax, ...parsePax(data) }
        else if (type === 'L') longName = cString(data)
        else longLink = cString(data)
        continue
      }
      const name = records.path ?? longName ?? ustarName(header)
      const linkname = records.linkpath ?? longLink ?? cString(header.subarray(157, 257))
      pax = {}
      longName = undefined
      longLink = undefined
      const kind = type === '0' || type === '\0' || type === '7' ? 'file' : type === '1' || type === '2' ? 'symlink' : 'other'
      const read = (): AsyncIterable<Buffer> =>
        size === 0 ? emptyIterable() : createReadStream(path, { start, end: end - 1, highWaterMark: 1024 * 1024 })
      const entry: Entry = { path: normalisePath(name), kind, size, read, drain: async () => {}, file: path, range: { start, end } }
      // As tar-stream reports them: a hard link names another entry of the archive, from its root.
      if (kind === 'symlink') entry.linkname = type === '1' ? `/${normalisePath(linkname)}` : linkname
      yield entry
    }
  } finally {
    await handle.close()
  }
}

async function readExactly(handle: FileHandle, position: number, length: number, path: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length)
  let read = 0
  while (read < length) {
    const { bytesRead } = await handle.read(buffer, read, length - read, position + read)
    if (bytesRead === 0) throw new Error(`${path}: the tar archive is truncated at byte ${position + read}`)
    read += bytesRead
  }
  return buffer
}

function validChecksum(header: Buffer): boolean {
  let sum = 0
  for (let i = 0; i < block; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!
  return sum === parseNumber(header.subarray(148, 156))
}

/** An octal field, or GNU's base-256 for large values (the high bit of the first byte set). */
function parseNumber(field: Buffer): number {
  if ((field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!
    return value
  }
  const text = cString(field).trim()
  return text === '' ? 0 : parseInt(text, 8)
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100))
  const ustar = header.subarray(257, 262).toString('latin1') === 'ustar'
  const prefix = ustar ? cString(header.subarray(345, 500)) : ''
  return prefix === '' ? name : `${prefix}/${name}`
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0)
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8')
}

/** `<length> <key>=<value>\n` records. */
function parsePax(data: Buffer): Record<string, string> {
  const records: Record<string, string> = {}
  let at = 0
  while (at < data.length) {
    const space = data.indexOf(0x20, at)
    if (space === -1) break
    const length = Number(data.subarray(at, space).toString('latin1'))
    if (!Number.isInteger(length) || length <= 0) break
    const record = data.subarray(space + 1, at + length - 1).toString('utf8')
    const equals = record.indexOf('=')
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1)
    at += length
  }
  return records
}

async function* emptyIterable(): AsyncGenerator<Buffer> {}

/** What the file at `path` holds, by its first bytes (magic.ts): a plain tar can be read by position. */
export async function fileKind(path: string): Promise<ArchiveKind | undefined> {
  const handle = await open(path, 'r')
  try {
    const head = Buffer.alloc(sniffLength)
    const { bytesRead } = await handle.read(head, 0, sniffLength, 0)
    return sniff(head.subarray(0, bytesRead))
  } finally {
    await handle.close()
  }
}
