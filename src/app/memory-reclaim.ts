// Gives the memory of finished transfers back soon after they end (#18). The 1 MiB blocks of
// fills and downloads are external memory that only a major GC frees, and an idle server runs
// none: RSS stayed at its peak for as long as nothing else allocated. Once the process-wide block
// budget has been empty for a moment, one major GC runs (a few ms on Ferry's heap, while idle).
// Then glibc's malloc keeps most of what the GC freed (20-45 MiB after a fill) for the next
// allocation: the sendfile helper's trimMemory() hands those free pages back.
//
// During a fill, each 64 KiB read from the upstream's socket is a new buffer, dead once copied
// into the fill's blocks and written, yet freed only by a GC: on-heap allocation is too slow to
// trigger scavenges, so V8 waited for its external-memory limit and ran a major GC every 100-200
// ms, with 35-40 MiB of dead chunks held between them (peak external 55-58 MiB for 16 MiB of
// blocks). One scavenge per 8 MiB copied frees them young, at a fraction of the CPU.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { BlockBudget } from '../transfer/shared-blocks.js'

/** How long the budget stays empty before the GC: a pull's next layer usually starts sooner. */
export const reclaimDelayMs = 2_000

/** V8's full GC: the one --expose-gc exposes, obtained without the flag at start; undefined if V8 refuses. */
export function majorGc(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc
  if (typeof exposed === 'function') return exposed as () => void
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as unknown
    return typeof gc === 'function' ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}

/** V8's scavenge (a young-generation GC), from the same function; undefined if V8 refuses. */
export function minorGc(): (() => void) | undefined {
  const gc = majorGc() as ((options?: { type: 'minor' | 'major' }) => void) | undefined
  return gc && (() => gc({ type: 'minor' }))
}

/** How many bytes fills copy between two scavenges: the dead chunks stay within twice that. */
export const scavengeEveryBytes = 8 * 1024 * 1024

/**
 * How many bytes S3 writes copy into parts between two scavenges. node:http hands each 64 KiB of a
 * request body over as a Buffer of its own, and a push allocates so little else that no scavenge
 * came: the dead Buffers started a full mark-compact every ~16 MiB (24 in four 100 MiB pushes, GC
 * 17% of Ferry's CPU). Every 4 MiB was steadier than 2, 8 or 16 (bench/README.md, #14 sixth round).
 */
export const partsScavengeEveryBytes = 4 * 1024 * 1024

/** A counter of bytes that runs `scavenge` each time `everyBytes` more have been counted. */
export function pacedScavenges(everyBytes: number, scavenge: () => void): (bytes: number) => void {
  let counted = 0
  return (bytes) => {
    counted += bytes
    if (counted < everyBytes) return
    counted = 0
    scavenge()
  }
}

/** Runs `scavenge` each time fills have copied `everyBytes` more into the budget's blocks; returns a stop function. */
export function scavengeWhileFilling(budget: BlockBudget, scavenge: () => void, everyBytes = scavengeEveryBytes): () => void {
  budget.onCopied = pacedScavenges(everyBytes, scavenge)
  return () => {
    budget.onCopied = undefined
  }
}

/** V8 frees a dead buffer's memory on a background thread after the GC: the trim waits for that. */
export const trimDelayMs = 500

/** One major GC, then, `delayMs` later, `trim` (the C heap's free pages back to the system) if there is one. */
export function gcThenTrim(gc: () => void, trim: (() => unknown) | undefined, delayMs = trimDelayMs): () => void {
  return () => {
    gc()
    if (trim !== undefined) setTimeout(trim, delayMs).unref()
  }
}

/** Runs `collect` once the budget has held no block for `delayMs`; returns a stop function. */
export function reclaimWhenIdle(budget: BlockBudget, collect: () => void, delayMs = reclaimDelayMs): () => void {
  let timer: NodeJS.Timeout | undefined
  budget.onEmpty = () => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      if (budget.held === 0) collect()
    }, delayMs)
    timer.unref()
  }
  return () => {
    clearTimeout(timer)
    budget.onEmpty = undefined
  }
}
