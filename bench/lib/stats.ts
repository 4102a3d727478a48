// Samples per (target, metric) over the rounds, medians, and Markdown tables.
import { readCpuSeconds, sampleRss } from '../../test/helpers/rss-sampler.js'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB
/** Throughput is in MB/s of 10^6 bytes, as the targets are. */
export const MB = 1e6

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Samples by target and metric. */
export class Samples {
  private readonly data = new Map<string, number[]>()

  add(target: string, metric: string, value: number): void {
    const key = `${target}\u0000${metric}`
    const list = this.data.get(key) ?? []
    list.push(value)
    this.data.set(key, list)
  }

  values(target: string, metric: string): number[] {
    return this.data.get(`${target}\u0000${metric}`) ?? []
  }

  median(target: string, metric: string): number {
    return median(this.values(target, metric))
  }

  toJSON(): Record<string, Record<string, { median: number; samples: number[] }>> {
    const out: Record<string, Record<string, { median: number; samples: number[] }>> = {}
    for (const [key, samples] of this.data) {
      const [target, metric] = key.split('\u0000') as [string, string]
      out[target] ??= {}
      out[target][metric] = { median: median(samples), samples }
    }
    return out
  }
}

export interface Measured<T> {
  value: T
  /** User + system CPU seconds the server used meanwhile. */
  cpuSeconds: number
  peakRssBytes: number
}

/** Runs `fn` while sampling the server's RSS (every 50 ms) and CPU time (from /proc). */
export async function measured<T>(pid: number, fn: () => Promise<T>): Promise<Measured<T>> {
  const cpuBefore = readCpuSeconds(pid) ?? Number.NaN
  const rss = sampleRss(pid, 50)
  try {
    const value = await fn()
    const cpuAfter = readCpuSeconds(pid) ?? Number.NaN
    return { value, cpuSeconds: cpuAfter - cpuBefore, peakRssBytes: rss.stop().peakBytes }
  } catch (err) {
    rss.stop()
    throw err
  }
}

/** Target order for round `round`: rotated each round, so no target always runs first. */
export function alternate<T>(targets: readonly T[], round: number): T[] {
  const shift = round % targets.length
  return [...targets.slice(shift), ...targets.slice(0, shift)]
}

export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '–'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

export function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '–'
  const r = a / b
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`
}

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n')
}

export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
}
