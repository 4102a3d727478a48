// The table of contents of Ferry's own bundles: the first tar entry, so `ferry bundle ls` reads
// a few KiB at the head of a bundle of any size and stops (decompressing only that far).
import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { decompress } from './decompress.js'
import { peek } from './head-stream.js'
import type { ImageNode } from './image-graph.js'
import { isCompression, sniff, sniffLength } from './magic.js'

/** The entry's name; `format` inside it says the rest is Ferry's layout. */
export const tocEntryName = 'ferry-bundle.json'
export const tocFormat = 'ferry-bundle/v1'
const maxTocBytes = 16 * 1024 * 1024

export interface BundleImage extends ImageNode {
  /** The reference it was pulled by, and its name in index.json: `gcr.io/x/y:1.0`. */
  reference: string
  /** Manifests whose `subject` is this image or one of its platforms (signatures, SBOMs), bundled with it. */
  referrers?: ImageNode[]
}

export interface BundleToc {
  format: typeof tocFormat
  images: BundleImage[]
  /** Distinct blobs (manifests included) and their bytes: what the tar holds besides its metadata. */
  blobs: number
  bytes: number
}

export function serialiseToc(toc: BundleToc): Buffer {
  return Buffer.from(`${JSON.stringify(toc, null, 1)}\n`, 'utf8')
}

export interface HeadRead {
  toc: BundleToc | undefined
  /** Bytes of the file read (compressed), for the proof that only the head was. */
  bytesRead: number
}

/** Bytes of the file fed to the decompressor at first: a table of contents of thousands of images fits. */
const headBytes = 256 * 1024

/** The table of contents when `file` is one of Ferry's bundles (plain or compressed); undefined otherwise. */
export async function readToc(file: string): Promise<HeadRead> {
  // A decompressor takes whatever it is fed, far beyond what was asked of it: the head is fed
  // alone, and the whole file only when the table of contents did not fit in it.
  const head = await readHead(file, headBytes)
  if (head.found !== 'short') return { toc: head.found === 'toc' ? head.toc : undefined, bytesRead: head.bytesRead }
  const whole = await readHead(file, Infinity)
  return { toc: whole.found === 'toc' ? whole.toc : undefined, bytesRead: head.bytesRead + whole.bytesRead }
}

type FirstEntry = { found: 'toc'; toc: BundleToc } | { found: 'other' } | { found: 'short' }

async function readHead(file: string, limit: number): Promise<FirstEntry & { bytesRead: number }> {
  let bytesRead = 0
  const input = createReadStream(file, { highWaterMark: 64 * 1024 })
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of input) {
      bytesRead += (chunk as Buffer).length
      yield chunk as Buffer
      if (bytesRead >= limit) return
    }
  }
  try {
    const { head, stream } = await peek(counted(), sniffLength)
    const kind = sniff(head)
    if (kind === undefined) {
      stream.destroy()
      return { found: 'other', bytesRead }
    }
    const tar = isCompression(kind) ? decompress(kind, stream, file) : stream
    const entry = await firstEntry(tar).catch((): FirstEntry => ({ found: 'short' }))
    tar.destroy()
    stream.destroy()
    return { ...entry, bytesRead }
  } finally {
    input.destroy()
  }
}

/** Reads the first tar header, and the entry when it is the table of contents. */
async function firstEntry(tar: Readable): Promise<FirstEntry> {
  const chunks: Buffer[] = []
  let have = 0
  let need = 512
  let size = -1
  for await (const chunk of tar) {
    chunks.push(chunk as Buffer)
    have += (chunk as Buffer).length
    if (have < need) continue
    const bytes = Buffer.concat(chunks)
    if (size < 0) {
      const name = bytes.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '')
      const type = String.fromCharCode(bytes[156] ?? 0)
      if (name !== tocEntryName || (type !== '0' && type !== '\0')) return { found: 'other' }
      size = parseInt(bytes.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim(), 8)
      if (!Number.isSafeInteger(size) || size > maxTocBytes) return { found: 'other' }
      need = 512 + size
      if (have < need) continue
    }
    try {
      const toc = JSON.parse(bytes.subarray(512, 512 + size).toString('utf8')) as BundleToc
      return toc.format === tocFormat && Array.isArray(toc.images) ? { found: 'toc', toc } : { found: 'other' }
    } catch {
      return { found: 'other' }
    }
  }
  return { found: size < 0 ? 'other' : 'short' }
}

/** Bytes for people: 1.2 MiB. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`
}

/** The tree `ferry bundle ls` prints: one line per image, one per platform below it. */
export function formatTree(images: Array<BundleImage & { problem?: string }>): string {
  const lines: string[] = []
  for (const image of images) {
    if (image.problem !== undefined) {
      lines.push(`${image.reference}  UNUSABLE: ${image.problem}`)
      continue
    }
    const kind = image.children !== undefined ? `index of ${image.children.length}` : (image.artifactType ?? 'image')
    lines.push(`${image.reference}  ${image.digest}  ${kind}  ${formatSize(image.size)}`)
    const children = image.children ?? []
    for (const [i, child] of children.entries()) {
      const branch = i === children.length - 1 ? '└──' : '├──'
      lines.push(`${branch} ${child.platform ?? 'unknown'}  ${child.digest}  ${formatSize(child.size)}`)
    }
    for (const referrer of image.referrers ?? []) {
      lines.push(`  ↳ referrer  ${referrer.digest}  ${referrer.artifactType ?? referrer.mediaType}  ${formatSize(referrer.size)}`)
    }
  }
  return lines.length === 0 ? '(no images)\n' : `${lines.join('\n')}\n`
}
