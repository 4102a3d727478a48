// V8 grows its young generation (two semi-spaces) from 1 MiB up to 16 MiB each while Ferry's
// modules load and `serve` composes the app, and an idle process never shrinks it again: ~12 MiB
// of an idle server's RSS (#18). The launcher holds it at its initial size from before the first
// import (a flag set later is too late) until the command runs. Then `serve` lets it grow only up
// to a bound for good (a load grew it to 2 × 16 MiB, which stayed after the load and added to
// every peak); the other commands let it grow as V8 would. V8 fixes its maximum when the process
// starts, so the bound is kept by switching the growth factor after each GC. This module imports
// node builtins only: the launcher loads it before anything else.
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'

const flag = '--semi-space-growth-factor'
/** V8's default factor. */
const defaultGrowth = 2
const MiB = 1024 * 1024

/** Lets the young generation grow: without a bound as V8 would, with one up to that many MiB per semi-space. */
export type ReleaseYoungGeneration = (boundMiB?: number) => void

/**
 * Holds the young generation at its size until the returned function is called (idempotent).
 * Undefined when the node command line sets the factor itself: that choice is left alone.
 */
export function holdYoungGeneration(execArgv: readonly string[]): ReleaseYoungGeneration | undefined {
  if (commandLineSets(execArgv, flag)) return undefined
  setGrowth(1)
  let released = false
  return (boundMiB) => {
    if (released) return
    released = true
    if (boundMiB === undefined) setGrowth(defaultGrowth)
    else boundYoungGeneration(boundMiB)
  }
}

/**
 * After every GC: V8 may double the semi-spaces only while the doubled size stays within the
 * bound. A single synchronous burst of allocation can grow them more than once before the
 * observer runs; V8 shrinks them at a GC that finds allocation low for a few seconds, and the
 * observer, which stays for the process's life, holds them to the bound from there.
 */
function boundYoungGeneration(boundMiB: number): void {
  const limit = 2 * boundMiB * MiB // new space: two semi-spaces
  let growth = 0
  const steer = (): void => {
    const next = newSpaceSize() * defaultGrowth <= limit ? defaultGrowth : 1
    if (next === growth) return
    growth = next
    setGrowth(next)
  }
  steer()
  new PerformanceObserver(steer).observe({ entryTypes: ['gc'] })
}

/** Whether node's command line sets the V8 flag `flag` (either spelling): a choice Ferry leaves alone. */
export function commandLineSets(execArgv: readonly string[], flag: string): boolean {
  return execArgv.some((arg) => arg.replaceAll('_', '-').startsWith(flag))
}

function newSpaceSize(): number {
  for (const space of getHeapSpaceStatistics()) if (space.space_name === 'new_space') return space.space_size
  return 0
}

function setGrowth(factor: number): void {
  setFlagsFromString(`${flag}=${factor}`)
}
