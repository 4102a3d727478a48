// V8 sizes the old generation from what survived the last full GC, and for a process with a
// small heap it grows the limit by little, so a process that moves bytes through short-lived
// buffers ran a full GC every few MB of what outlived two scavenges:
// - `push images`: ~15 MB alive; the bundle's chunks (decompressor output, spool writes, upload
//   bodies) ran ~50 mark-compacts in a 1.1 GiB .tar.zst push, ~1 CPU s of its 5-6 (--trace-gc).
//   With what survived plus 48 MB it ran 3-4, and its peak RSS rose by 10-20 MiB (bound 200).
// - `serve`: ~22 MB alive; receiving a 1.1 GiB `push images` (request objects, body chunks in
//   flight to the disk) ran 42-53 mark-compacts, and Ferry's user CPU was 3.2-4.3 s. With 32 MB
//   of room it ran 3-4, 1.9-2.1 s; the push took 3.6-4.1 s instead of 4.7-5.3 (bench/README.md,
//   #15 seventh round). The room is given only while pushed bytes arrive: always on, it raised
//   the peak of the memory bench (fills, fan-out, downloads) from 131 to 147 MiB (bound 150).
// The room is fixed rather than a factor so that a larger heap (a bundle of many images, a
// server with many tags cached) does not get a limit it cannot afford. V8 reads the factor at
// every GC, so it is set when the command runs and steered after each full GC. A node command
// line that sets it itself is left alone.
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { commandLineSets } from './young-generation.js'

const flag = '--heap-growing-percent'
const MB = 1024 * 1024
/** Garbage let into the old generation between full GCs, per command. */
export const oldGenerationRoom = { push: 48 * MB, serve: 32 * MB } as const
/** At most fourfold, and at least V8's own smallest step (1.1). */
const maxPercent = 300
const minPercent = 10
let steering = false

/** How long after the last pushed byte `serve` goes back to V8's own factor. */
export const receivingIdleMs = 2_000

/** The factor, as a percent over 1, that gives `live` bytes `roomBytes` of room, within the bounds. */
export function growingPercent(live: number, roomBytes: number): number {
  return Math.round(Math.max(minPercent, Math.min(maxPercent, (roomBytes / Math.max(1, live)) * 100)))
}

/** Lets the old generation grow `roomBytes` past what survived, for the rest of the process; false when the command line chose. */
export function growOldGenerationInLargeSteps(execArgv: readonly string[], roomBytes: number): boolean {
  if (commandLineSets(execArgv, flag)) return false
  // Once per process (tests run several pushes in one).
  if (steering) return true
  steering = true
  let current = 0
  const steer = (): void => {
    const percent = growingPercent(getHeapStatistics().used_heap_size, roomBytes)
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

/**
 * For `serve`: the room while pushed bytes arrive, V8's own factor (0: none set) once none came
 * for `idleMs`. Returns what to tell of those bytes; undefined when the command line chose the factor.
 */
export function growOldGenerationWhileReceiving(
  execArgv: readonly string[],
  roomBytes: number,
  idleMs: number = receivingIdleMs,
  setPercent: (percent: number) => void = (percent) => setFlagsFromString(`${flag}=${percent}`),
): ((bytes: number) => void) | undefined {
  if (commandLineSets(execArgv, flag)) return undefined
  let widened = false
  let lastAt = 0
  const settle = (): void => {
    const idle = performance.now() - lastAt
    if (idle < idleMs) return void setTimeout(settle, idleMs - idle).unref()
    widened = false
    setPercent(0)
  }
  return () => {
    lastAt = performance.now()
    if (widened) return
    widened = true
    setPercent(growingPercent(getHeapStatistics().used_heap_size, roomBytes))
    setTimeout(settle, idleMs).unref()
  }
}
