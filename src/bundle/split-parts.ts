// Split Zarf packages. `zarf package create --max-package-size` cuts a package into
// `<package>.part000`, `.part001`, …: part000 holds only JSON, `{"sha256Sum":"<hex>","bytes":N,
// "count":M}` (the whole package's sha256 and size, and how many parts follow), and parts 001 to
// M are the package's bytes in order. The first part is known by its content; the others can only
// be found by their names beside it. They are read in order as one stream, never joined on disk,
// and the stream fails at its end unless the bytes hash to sha256Sum: a bundle whose parts were
// mixed up, cut short or altered fails before anything of it is tagged.
import { createReadStream } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { createDigestHash, digestOfHash } from '../core/digest.js'

export interface SplitPackage {
  /** The first part (the JSON), as given. */
  first: string
  /** The data parts, in order. */
  parts: string[]
  sha256: string
  bytes: number
  /** Why it cannot be read: a part missing, or the parts not adding up to `bytes`. */
  problem?: string
}

// part000 is a few dozen bytes; anything larger is not one.
const maxMetadataBytes = 4096
const partSuffix = /\.part(\d{3})$/

/**
 * The split package `path` belongs to: `path` is its first part (by its content), or another
 * part whose `.part000` sibling is one. Undefined when it is no split package. With a `problem`,
 * naming the file, when a part is missing or the parts do not add up to the size the first gives.
 */
export async function splitPackageOf(path: string): Promise<SplitPackage | undefined> {
  const own = await metadataOf(path)
  const suffix = partSuffix.exec(path)
  if (own === undefined && (suffix === null || suffix[1] === '000')) return undefined
  const first = own !== undefined ? path : path.replace(partSuffix, '.part000')
  const metadata = own ?? (await metadataOf(first).catch(() => undefined))
  if (metadata === undefined) return undefined
  if (!partSuffix.test(first)) throw new Error(`${first} is the first part of a split package, but its name does not end in .part000`)
  const name = (i: number): string => first.replace(partSuffix, `.part${String(i).padStart(3, '0')}`)
  const parts = Array.from({ length: metadata.count }, (_, i) => name(i + 1))
  const split: SplitPackage = { first, parts, sha256: metadata.sha256, bytes: metadata.bytes }
  let total = 0
  for (const part of parts) {
    const stats = await stat(part).catch(() => undefined)
    if (stats?.isFile() !== true) {
      const range = `.part001 to ${partName(metadata.count)}`
      return {
        ...split,
        problem: `${part} is missing: ${basename(first)} says the package is split into ${metadata.count} parts (${range})`,
      }
    }
    total += stats.size
  }
  if (await stat(name(metadata.count + 1)).catch(() => undefined)) {
    return { ...split, problem: `${name(metadata.count + 1)}: ${basename(first)} says the package has only ${metadata.count} parts` }
  }
  if (total !== metadata.bytes) {
    return {
      ...split,
      problem: `the ${metadata.count} parts of ${basename(first)} hold ${total} bytes, but it says the package has ${metadata.bytes}`,
    }
  }
  return split
}

/** The parts' bytes in order; the stream fails at its end unless they hash to the package's sha256. */
export function readSplitPackage(split: SplitPackage, options: { onRead?: (bytes: number) => void; signal?: AbortSignal } = {}): Readable {
  async function* joined(): AsyncGenerator<Buffer> {
    const hash = createDigestHash('sha256')
    let read = 0
    for (const part of split.parts) {
      for await (const chunk of createReadStream(part, { highWaterMark: 1024 * 1024 })) {
        options.signal?.throwIfAborted()
        hash.update(chunk as Buffer)
        read += (chunk as Buffer).length
        options.onRead?.(read)
        yield chunk as Buffer
      }
    }
    const actual = digestOfHash('sha256', hash)
    if (actual !== `sha256:${split.sha256}`) {
      throw new Error(`the parts of ${basename(split.first)} hash to ${actual}, not to the sha256Sum ${split.sha256} it gives`)
    }
  }
  return Readable.from(joined(), { objectMode: false })
}

async function metadataOf(path: string): Promise<{ sha256: string; bytes: number; count: number } | undefined> {
  const stats = await stat(path)
  if (!stats.isFile() || stats.size > maxMetadataBytes) return undefined
  const file = await open(path, 'r')
  let text: string
  try {
    text = (await file.readFile()).toString('utf8')
  } finally {
    await file.close()
  }
  let document: { sha256Sum?: unknown; bytes?: unknown; count?: unknown }
  try {
    document = JSON.parse(text) as typeof document
  } catch {
    return undefined
  }
  const { sha256Sum, bytes, count } = document ?? {}
  if (typeof sha256Sum !== 'string' || !/^[0-9a-f]{64}$/.test(sha256Sum)) return undefined
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) return undefined
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > 999) return undefined
  return { sha256: sha256Sum, bytes, count }
}

function partName(i: number): string {
  return `.part${String(i).padStart(3, '0')}`
}
