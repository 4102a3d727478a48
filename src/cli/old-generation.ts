// V8 sizes the old generation from what survived the last full GC, and for a process with a
// small heap it grows the limit by little, so a process that moves bytes through short-lived
// buffers ran a full GC every few MB of what outlived two scavenges:
// - `push images`: ~15 MB alive; the bundle's chunks (decompressor output, spool writes, upload
//   bodies) ran ~50 mark-compacts in a 1.1 GiB .tar.zst push, ~1 CPU s of its 5-6 (--trace-gc).
//   With what survived plus 48 MB it ran 3-4, and its peak RSS rose by 10-20 MiB (bound 200).
// - `serve`: ~22 MB alive; receiving a 1.1 GiB `push images` (8 uploads at once: request
//   objects, body chunks in flight to the disk) ran 42-53 mark-compacts, and Ferry's user CPU was
//   3.2-4.3 s. With a factor of 2.5 (--heap-growing-percent=150) it ran 3-4, 1.9-2.1 s; the push
//   took 3.6-4.1 s instead of 4.7-5.3 (bench/README.md, #15 seventh round). But one upload alone
//   cost more CPU with it (3.0 s per GiB against 2.1), and so did a bulk import at that factor,
//   and always on it raised the memory bench's peak (fills, fan-out, downloads) from 131 to 147
//   MiB (bound 150): the room is given only while two or more uploads run at once. A bulk import
//   gets a larger factor of its own (importGrowingPercent).
// The room is fixed rather than a factor so that a larger heap (a bundle of many images, a
// server with many tags cached) does not get a limit it cannot afford. V8 reads the factor at
// every GC, so it is set when the command runs and steered after each full GC. A node command
// line that sets it itself is left alone.
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import type { UploadWatch } from '../storage/digesting-stream.js'
import { commandLineSets } from './young-generation.js'

const flag = '--heap-growing-percent'
const MB = 1024 * 1024
/** Garbage let into the old generation between full GCs, per command. */
export const oldGenerationRoom = { push: 48 * MB } as const
/**
 * `serve`'s factor while uploads run at once: 2.5-fold. 1.2-fold (32 MB past its ~26 MB) and
 * 1.7-fold left the full GCs as they were: they come from V8's global limit (the heap plus the body
 * chunks' external memory), which the factor scales too.
 */
export const uploadGrowingPercent = 150
/** At most fourfold, and at least V8's own smallest step (1.1). */
const maxPercent = 300
const minPercent = 10
let steering = false

/** How long after the last upload or import ended `serve` goes back to V8's own factor. */
export const writesIdleMs = 2_000

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

/** How many uploads at once get `serve` the room: one stream alone did better without it. */
export const concurrentUploads = 2

/**
 * `serve`'s factor while a bulk import runs: 4-fold. At V8's own factor a 1.1 GiB import ran
 * either 2 mark-compacts or 22-80 (each every ~40 ms at a 20 MB heap, the user CPU doubled),
 * in no pattern: once a full GC ran while the process was busy, V8 chose a small factor, and the
 * 1 MiB chunks in flight to the disk and the hash threads, promoted by the scavenges, used that
 * room up at once. 2.5-fold still ran 26-28; 4- and 7-fold ran 2 in every round (bench/README.md,
 * #15 eighth round).
 */
export const importGrowingPercent = 300

export interface WriteWatches {
  /** Uploads of pushed blobs (a bulk import's writes are not counted). */
  uploads: UploadWatch
  /** Bulk imports, from start to end. */
  imports: UploadWatch
}

export interface WriteRoomOptions {
  uploadPercent?: number
  importPercent?: number
  idleMs?: number
  setPercent?: (percent: number) => void
}

/**
 * For `serve`: the room once `concurrentUploads` or more uploads take bytes in at once, more while
 * an import runs; V8's own factor (0: none set) again once nothing has run for `idleMs`. Returns
 * what uploads and imports tell when they start and end; undefined when the command line chose the factor.
 */
export function growOldGenerationWhileWriting(execArgv: readonly string[], options: WriteRoomOptions = {}): WriteWatches | undefined {
  if (commandLineSets(execArgv, flag)) return undefined
  const {
    uploadPercent = uploadGrowingPercent,
    importPercent = importGrowingPercent,
    idleMs = writesIdleMs,
    setPercent = (percent: number) => setFlagsFromString(`${flag}=${percent}`),
  } = options
  const running = { uploads: 0, imports: 0 }
  /** The factor set since the last idle time (0: V8's own). */
  let applied = 0
  let idleSince = 0
  let timer: NodeJS.Timeout | undefined
  const raise = (): void => {
    const wanted = running.imports > 0 ? importPercent : running.uploads >= concurrentUploads ? uploadPercent : 0
    if (wanted <= applied) return
    applied = wanted
    setPercent(wanted)
  }
  const settle = (): void => {
    timer = undefined
    if (running.uploads + running.imports > 0) return
    const waited = performance.now() - idleSince
    if (waited < idleMs) {
      timer = setTimeout(settle, idleMs - waited)
      timer.unref()
      return
    }
    applied = 0
    setPercent(0)
  }
  // Blobs of one push follow each other, at times one at a time: the room stays until nothing has
  // run for the idle time (V8 applies a change only at its next full GC).
  const ended = (): void => {
    if (applied === 0 || running.uploads + running.imports > 0) return
    idleSince = performance.now()
    if (timer === undefined) {
      timer = setTimeout(settle, idleMs)
      timer.unref()
    }
  }
  const watching = (kind: keyof typeof running): UploadWatch => ({
    begin() {
      running[kind]++
      raise()
    },
    end() {
      running[kind] = Math.max(0, running[kind] - 1)
      ended()
    },
  })
  return { uploads: watching('uploads'), imports: watching('imports') }
}
