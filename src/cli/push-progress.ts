// Progress of `ferry push images` on stderr. On a terminal: one status line redrawn in place (a bar
// over the bundle's bytes read, MB/s and ETA while reading; images done while pushing), cleared
// before anything else is printed. Off a terminal: a plain line every few seconds. Both only ever
// show counters that grow (bytes read, images done), so a retried upload never moves them back.
import type { PushStats } from '../bundle/results.js'
import type { CliIo } from './io.js'
import { formatStats } from './push-report.js'

const lineEveryMs = 5_000
const redrawEveryMs = 250
const barWidth = 24
const MB = 1_000_000

export class PushProgress {
  readonly #io: CliIo
  readonly #stats: PushStats
  readonly #started = Date.now()
  readonly #totalBytes: number | undefined
  readonly #terminal: boolean
  #timer: NodeJS.Timeout | undefined
  #drawn = false
  imagesTotal = 0
  imagesDone = 0

  /** `totalBytes`: the bundle file's size (undefined for a folder: no percentage). */
  constructor(io: CliIo, stats: PushStats, totalBytes: number | undefined) {
    this.#io = io
    this.#stats = stats
    this.#totalBytes = totalBytes
    this.#terminal = io.stderrIsTTY === true
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#terminal ? redrawEveryMs : lineEveryMs)
  }

  /** Clears the status line (before other output); it is drawn again at the next tick. */
  clear(): void {
    if (!this.#drawn) return
    this.#io.stderr.write('\r\x1b[K')
    this.#drawn = false
  }

  stop(): void {
    clearInterval(this.#timer)
    this.clear()
  }

  #tick(): void {
    const seconds = (Date.now() - this.#started) / 1000
    if (!this.#terminal) {
      this.#io.stderr.write(`${formatStats(this.#stats, seconds)}\n`)
      return
    }
    this.#io.stderr.write(`\r\x1b[K${this.line(seconds)}`)
    this.#drawn = true
  }

  /** The status line for a terminal. */
  line(seconds: number): string {
    const stats = this.#stats
    const rate = seconds > 0 ? stats.readBytes / MB / seconds : 0
    const blobs = `blobs ${stats.blobsPushed} pushed, ${stats.blobsSkipped} skipped, ${stats.blobsMounted} mounted`
    if (stats.phase === 'reading') {
      const total = this.#totalBytes
      const read = `${(stats.readBytes / MB).toFixed(1)}${total ? `/${(total / MB).toFixed(1)}` : ''} MB`
      if (total === undefined || total === 0) return `reading ${read} · ${rate.toFixed(1)} MB/s · ${blobs}`
      const fraction = Math.min(1, stats.readBytes / total)
      const filled = Math.round(fraction * barWidth)
      const eta = rate > 0 ? Math.max(0, (total - stats.readBytes) / MB / rate) : undefined
      return `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${Math.floor(fraction * 100)}% ${read} · ${rate.toFixed(1)} MB/s · ETA ${eta === undefined ? '?' : `${Math.ceil(eta)}s`} · ${blobs}`
    }
    return `pushing images ${this.imagesDone}/${this.imagesTotal} · ${(stats.bytesPushed / MB).toFixed(1)} MB uploaded · ${blobs}`
  }
}
