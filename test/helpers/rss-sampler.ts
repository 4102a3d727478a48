// Samples another process's resident set size from /proc/<pid>/status (Linux only).
import { readFileSync } from 'node:fs'

export interface RssSampler {
  /** Stops sampling (after one last sample) and returns the peak and sample count. */
  stop(): { peakBytes: number; samples: number }
}

/** The current VmRSS of `pid` in bytes, or undefined when unreadable (not Linux, process gone). */
export function readRss(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

export function sampleRss(pid: number, intervalMs = 100): RssSampler {
  let peakBytes = 0
  let samples = 0
  const sample = (): void => {
    const rss = readRss(pid)
    if (rss === undefined) return
    samples++
    if (rss > peakBytes) peakBytes = rss
  }
  sample()
  const timer = setInterval(sample, intervalMs)
  return {
    stop() {
      clearInterval(timer)
      sample()
      return { peakBytes, samples }
    },
  }
}

/**
 * User plus system CPU seconds `pid` has used so far (from /proc/<pid>/stat, assuming the usual
 * 100 clock ticks per second), or undefined when unreadable.
 */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12])
    return Number.isFinite(ticks) ? ticks / 100 : undefined
  } catch {
    return undefined
  }
}
