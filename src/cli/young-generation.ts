// V8 grows its young generation (two semi-spaces) from 1 MiB up to 16 MiB each while Ferry's
// modules load and `serve` composes the app, and an idle process never shrinks it again: ~12 MiB
// of an idle server's RSS (#18). The launcher holds it at its initial size from before the first
// import (a flag set later is too late) until the command runs; then it may grow again, as fast
// transfers want. This module imports node:v8 only: the launcher loads it before anything else.
import { setFlagsFromString } from 'node:v8'

const flag = '--semi-space-growth-factor'
/** V8's default factor. */
const defaultGrowth = 2

/**
 * Holds the young generation at its size until the returned function is called (idempotent).
 * Undefined when the node command line sets the factor itself: that choice is left alone.
 */
export function holdYoungGeneration(execArgv: readonly string[]): (() => void) | undefined {
  if (execArgv.some((arg) => arg.replaceAll('_', '-').startsWith(flag))) return undefined
  setFlagsFromString(`${flag}=1`)
  let released = false
  return () => {
    if (released) return
    released = true
    setFlagsFromString(`${flag}=${defaultGrowth}`)
  }
}
