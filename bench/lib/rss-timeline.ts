// An RSS timeline of one process: VmRSS every 250 ms with labelled phases, written as JSON and
// drawn as a small SVG line chart (issue #18: memory over a run at a glance).
import { writeFile } from 'node:fs/promises'
import { readRss } from '../../test/helpers/rss-sampler.js'
import { MiB } from './stats.js'

export interface TimelineSample {
  /** Seconds since the timeline started. */
  t: number
  rssMiB: number
}

export interface TimelinePhase {
  label: string
  start: number
}

export class RssTimeline {
  readonly samples: TimelineSample[] = []
  readonly phases: TimelinePhase[] = []
  readonly #started = performance.now()
  readonly #timer: NodeJS.Timeout

  constructor(
    private readonly pid: number,
    intervalMs = 250,
  ) {
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), intervalMs)
  }

  /** Seconds since the start. */
  now(): number {
    return (performance.now() - this.#started) / 1000
  }

  phase(label: string): void {
    this.phases.push({ label, start: this.now() })
  }

  /** The last sample's RSS in MiB. */
  latest(): number {
    return this.samples.at(-1)?.rssMiB ?? Number.NaN
  }

  /** The highest RSS sampled between two times (seconds). */
  peak(from = 0, to = Number.POSITIVE_INFINITY): number {
    return Math.max(...this.samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.rssMiB))
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#sample()
  }

  async write(jsonFile: string, svgFile: string, title: string): Promise<void> {
    await writeFile(jsonFile, `${JSON.stringify({ title, intervalMs: 250, phases: this.phases, samples: this.samples })}\n`)
    await writeFile(svgFile, svgChart(title, this.samples, this.phases))
  }

  #sample(): void {
    const rss = readRss(this.pid)
    if (rss !== undefined) this.samples.push({ t: Number(this.now().toFixed(2)), rssMiB: Number((rss / MiB).toFixed(1)) })
  }
}

/** A 640×240 line chart: RSS in MiB over seconds, phases as dashed verticals with labels. */
export function svgChart(title: string, samples: readonly TimelineSample[], phases: readonly TimelinePhase[]): string {
  const width = 640
  const height = 240
  const left = 44
  const right = 10
  const top = 24
  const bottom = 28
  const tMax = Math.max(1, ...samples.map((s) => s.t))
  const yMax = Math.ceil(Math.max(50, ...samples.map((s) => s.rssMiB)) / 50) * 50
  const x = (t: number): number => left + (t / tMax) * (width - left - right)
  const y = (mib: number): number => top + (1 - mib / yMax) * (height - top - bottom)
  const line = samples.map((s) => `${x(s.t).toFixed(1)},${y(s.rssMiB).toFixed(1)}`).join(' ')
  const gridlines = Array.from({ length: yMax / 50 + 1 }, (_, i) => i * 50)
    .map(
      (mib) =>
        `<line x1="${left}" x2="${width - right}" y1="${y(mib)}" y2="${y(mib)}" stroke="#ddd"/>` +
        `<text x="${left - 4}" y="${y(mib) + 4}" text-anchor="end">${mib}</text>`,
    )
    .join('')
  const ticks = Array.from({ length: Math.floor(tMax / 10) + 1 }, (_, i) => i * 10)
    .map((t) => `<text x="${x(t)}" y="${height - bottom + 12}" text-anchor="middle">${t}</text>`)
    .join('')
  const marks = phases
    .map(
      (p, i) =>
        `<line x1="${x(p.start)}" x2="${x(p.start)}" y1="${top}" y2="${height - bottom}" stroke="#999" stroke-dasharray="3,3"/>` +
        `<text x="${x(p.start) + 3}" y="${top + 10 + (i % 3) * 11}">${escape(p.label)}</text>`,
    )
    .join('')
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="10">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="14" font-size="12">${escape(title)}</text>`,
    gridlines,
    ticks,
    marks,
    `<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="${line}"/>`,
    `<text x="${width - right}" y="${height - 2}" text-anchor="end">seconds (RSS in MiB, sampled every 250 ms)</text>`,
    '</svg>',
    '',
  ].join('\n')
}

function escape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}
