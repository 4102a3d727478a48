// V8 sizes the old generation from what survived the last full GC, and for a process with a
// small heap it grows the limit by little: a `push images` keeps ~15 MB alive, and the bundle's
// chunks (decompressor output, spool writes, upload bodies) that live past two scavenges fill the
// rest, so a push of 1.1 GiB from a .tar.zst ran ~50 mark-compacts, ~1 CPU s of its 5-6 (--trace-gc).
// With the limit set to what survived plus 48 MB (fourfold at most) it ran 3-4, and its peak RSS
// rose by 10-20 MiB, within the 200 MiB bound. The room is fixed rather than a factor so that a
// bundle of many images, whose metadata keeps more alive, does not get a limit it cannot afford.
// V8 reads the factor at every GC, so it is set when the command runs and steered after each full
// GC. A node command line that sets it itself is left alone.
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { commandLineSets } from './young-generation.js'

const flag = '--heap-growing-percent'
/** Garbage let into the old generation between full GCs. */
const roomBytes = 48 * 1024 * 1024
/** At most fourfold, and at least V8's own smallest step (1.1). */
const maxPercent = 300
const minPercent = 10
let steering = false

/** The factor, as a percent over 1, that gives `live` bytes the room: 48 MB, within the bounds. */
export function growingPercent(live: number): number {
  return Math.round(Math.max(minPercent, Math.min(maxPercent, (roomBytes / Math.max(1, live)) * 100)))
}

/** Lets the old generation grow in large steps for the rest of the process; false when the command line chose. */
export function growOldGenerationInLargeSteps(execArgv: readonly string[]): boolean {
  if (commandLineSets(execArgv, flag)) return false
  // Once per process (tests run several pushes in one).
  if (steering) return true
  steering = true
  let current = 0
  const steer = (): void => {
    const percent = growingPercent(getHeapStatistics().used_heap_size)
    if (percent === current) return
    current = percent
    setFlagsFromString(`${flag}=${percent}`)
  }
  steer()
  const major = (entry: PerformanceEntry): boolean =>
    (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR
  new PerformanceObserver((list) => {
    if (list.getEntries().some(major)) steer()
  }).observe({ entryTypes: ['gc'] })
  return true
}
