// Progress of `ferry push images` on stderr. On a terminal: a block redrawn in place, an overall
// bar (over the bundle's bytes while it is read, with MB/s and ETA; over the images' bytes in place
// while they are pushed) and a line per image (state, bytes), cleared before anything else is
// printed. Off a terminal: a plain line every few seconds. Every figure shown only grows (bytes
// read, bytes in place, images done), so a retried upload never moves anything back.
import type { ImageProgress, PushStats } from '../bundle/results.js'
import type { CliIo } from './io.js'
import { formatStats } from './push-report.js'

const lineEveryMs = 5_000
const redrawEveryMs = 250
const barWidth = 24
/** Image lines at most; the rest are summed up in one more line. */
const maxImageLines = 8
const defaultColumns = 80
const MB = 1_000_000

export class PushProgress {
  readonly #io: CliIo
  readonly #stats: PushStats
  readonly #images: readonly ImageProgress[]
  readonly #started = Date.now()
  readonly #totalBytes: number | undefined
  readonly #terminal: boolean
  #timer: NodeJS.Timeout | undefined
  /** Lines of the block on the screen (0: none drawn). */
  #drawn = 0
  imagesTotal = 0
  imagesDone = 0

  /** `totalBytes`: the bundle file's size (undefined for a folder: no percentage). `images`: the push's, filled once it was read. */
  constructor(io: CliIo, stats: PushStats, totalBytes: number | undefined, images: readonly ImageProgress[] = []) {
    this.#io = io
    this.#stats = stats
    this.#totalBytes = totalBytes
    this.#images = images
    this.#terminal = io.stderrIsTTY === true
  }

  start(): void {
    // On a terminal at once, so even a run shorter than a tick shows where it is.
    if (this.#terminal) this.draw()
    this.#timer = setInterval(() => this.#tick(), this.#terminal ? redrawEveryMs : lineEveryMs)
  }

  /** Clears the block (before other output); it is drawn again at the next tick. */
  clear(): void {
    if (this.#drawn === 0) return
    this.#io.stderr.write(this.#erase())
    this.#drawn = 0
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.clear()
  }

  /** Draws the block again after other output (a terminal, while running). */
  resume(): void {
    if (this.#terminal && this.#timer !== undefined) this.draw()
  }

  /** Redraws the block in place (a terminal only). */
  draw(): void {
    const columns = Math.max(20, this.#io.stderrColumns?.() ?? defaultColumns)
    // A line as wide as the terminal would wrap, and the block could no longer be erased line by line.
    const lines = this.frame((Date.now() - this.#started) / 1000).map((line) => (line.length < columns ? line : line.slice(0, columns - 1)))
    this.#io.stderr.write(`${this.#erase()}${lines.join('\n')}`)
    this.#drawn = lines.length
  }

  #erase(): string {
    if (this.#drawn === 0) return ''
    return `\r${this.#drawn > 1 ? `\x1b[${this.#drawn - 1}A` : ''}\x1b[J`
  }

  #tick(): void {
    if (this.#terminal) return this.draw()
    this.#io.stderr.write(`${formatStats(this.#stats, (Date.now() - this.#started) / 1000)}\n`)
  }

  /** The block for a terminal: the overall line, then one per image while they are pushed. */
  frame(seconds: number): string[] {
    const lines = [this.line(seconds)]
    if (this.#stats.phase !== 'pushing' || this.#images.length === 0) return lines
    const shown = pick(this.#images)
    const width = Math.min(60, Math.max(...shown.map((image) => image.name.length)))
    for (const image of shown) {
      const name = image.name.length <= width ? image.name.padEnd(width) : `…${image.name.slice(-(width - 1))}`
      lines.push(
        `  ${image.state.padEnd(9)} ${name}  ${mb(image.bytesDone)}/${mb(image.bytesTotal)} MB ${percent(image.bytesDone, image.bytesTotal)}`,
      )
    }
    const hidden = this.#images.length - shown.length
    if (hidden > 0) {
      const rest = this.#images.filter((image) => !shown.includes(image))
      const finished = rest.filter((image) => image.state !== 'waiting' && image.state !== 'pushing').length
      lines.push(`  … and ${hidden} more (${finished} finished, ${hidden - finished} waiting)`)
    }
    return lines
  }

  /** The overall line for a terminal. */
  line(seconds: number): string {
    const stats = this.#stats
    const blobs = `blobs ${stats.blobsPushed} pushed, ${stats.blobsSkipped} skipped, ${stats.blobsMounted} mounted`
    if (stats.phase === 'reading') {
      const rate = seconds > 0 ? stats.readBytes / MB / seconds : 0
      const total = this.#totalBytes
      const read = `${mb(stats.readBytes)}${total ? `/${mb(total)}` : ''} MB`
      if (total === undefined || total === 0) return `reading ${read} · ${rate.toFixed(1)} MB/s · ${blobs}`
      const eta = rate > 0 ? Math.max(0, (total - stats.readBytes) / MB / rate) : undefined
      return `${bar(stats.readBytes, total)} ${read} · ${rate.toFixed(1)} MB/s · ETA ${eta === undefined ? '?' : `${Math.ceil(eta)}s`} · ${blobs}`
    }
    const images = this.#images
    if (images.length === 0) {
      return `pushing images ${this.imagesDone}/${this.imagesTotal} · ${mb(stats.bytesPushed)} MB uploaded · ${blobs}`
    }
    const done = images.reduce((sum, image) => sum + image.bytesDone, 0)
    const total = images.reduce((sum, image) => sum + image.bytesTotal, 0)
    const finished = images.filter((image) => image.state !== 'waiting' && image.state !== 'pushing').length
    return `${bar(done, total)} images ${finished}/${images.length} · ${mb(done)}/${mb(total)} MB in place · ${mb(stats.bytesPushed)} MB uploaded · ${blobs}`
  }
}

/** All images when they fit; else those being pushed first, then failed, waiting and finished ones, in report order. */
function pick(images: readonly ImageProgress[]): ImageProgress[] {
  if (images.length <= maxImageLines) return [...images]
  const rank: Record<ImageProgress['state'], number> = { pushing: 0, failed: 1, waiting: 2, skipped: 3, pushed: 4, unchanged: 4 }
  const chosen = new Set([...images].sort((a, b) => rank[a.state] - rank[b.state]).slice(0, maxImageLines))
  return images.filter((image) => chosen.has(image))
}

function bar(done: number, total: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(fraction * barWidth)
  return `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${Math.floor(fraction * 100)}%`
}

function percent(done: number, total: number): string {
  return `${Math.floor(total > 0 ? Math.min(100, (done / total) * 100) : 100)}%`
}

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1)
}
