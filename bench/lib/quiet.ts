// Guards measurements against other work on the machine (another session's test suite, a
// build): a measurement during which processes that are not the harness's used more than
// BENCH_FOREIGN_CPU cores (default 0.15) is discarded, the harness waits until the machine is
// quiet again, and measures once more (up to 3 times; then it keeps the last and counts it as
// disturbed). Kernel threads do not count: they mostly flush our own writes.
import { readdirSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { ourPids } from './processes.js'
import { progress } from './stats.js'

const ticksPerSecond = 100

interface ProcStat {
  ppid: number
  ticks: number
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return undefined
  }
}

/** CPU ticks used so far by every process except ours and kernel threads, by PID. */
function foreignTicks(): Map<number, number> {
  const ours = ourPids()
  const result = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (ours.has(pid) || pid === 2) continue
    const stat = readStat(name)
    if (!stat || stat.ppid === 2) continue
    result.set(pid, stat.ticks)
  }
  return result
}

/** Cores used by foreign processes between `before` and now, over `seconds`. */
function foreignCores(before: Map<number, number>, seconds: number): number {
  let ticks = 0
  for (const [pid, now] of foreignTicks()) ticks += now - (before.get(pid) ?? 0)
  return seconds > 0 ? ticks / ticksPerSecond / seconds : 0
}

const limit = Number(process.env.BENCH_FOREIGN_CPU ?? 0.15)
const maxWaitMs = 15 * 60_000
let disturbed = 0

/** Measurements kept although other processes used the CPU meanwhile. */
export function disturbedMeasurements(): number {
  return disturbed
}

/** Waits (at most 15 min) until foreign processes use less than the limit over 2 s. */
export async function waitForQuiet(): Promise<void> {
  if (limit <= 0) return // BENCH_FOREIGN_CPU=0: the check is off, so there is nothing to wait for
  const deadline = Date.now() + maxWaitMs
  let said = false
  for (;;) {
    const before = foreignTicks()
    await sleep(2_000)
    const cores = foreignCores(before, 2)
    if (cores < limit) return
    if (!said) progress(`waiting for the machine to be quiet: other processes use ${cores.toFixed(2)} cores`)
    said = true
    if (Date.now() > deadline) {
      progress('still not quiet after 15 min: measuring anyway')
      return
    }
  }
}

/** Runs `fn`; redoes it (after waiting for quiet) while other processes used the CPU meanwhile. */
export async function quietly<T>(label: string, fn: () => Promise<T>): Promise<T> {
  if (limit <= 0) return fn()
  for (let attempt = 1; ; attempt++) {
    const before = foreignTicks()
    const started = performance.now()
    const value = await fn()
    const cores = foreignCores(before, (performance.now() - started) / 1000)
    if (cores < limit) return value
    if (attempt >= 3) {
      disturbed++
      progress(`${label}: other processes used ${cores.toFixed(2)} cores meanwhile; kept after ${attempt} attempts`)
      return value
    }
    progress(`${label}: other processes used ${cores.toFixed(2)} cores meanwhile; measuring again`)
    await waitForQuiet()
  }
}
