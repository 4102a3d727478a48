// V8 sizes the old generation from what survived the last full GC, and for a process with a
// small heap it grows the limit by little: a `push images` keeps ~15 MB alive, and the bundle's
// chunks (decompressor output, spool writes, upload bodies) that live past two scavenges fill the
// rest, so a push of 1.1 GiB from a .tar.zst ran ~50 mark-compacts, ~1 CPU s of its 5-6 (--trace-gc).
// With the limit grown fourfold after each full GC it ran 3-4, and its peak RSS rose by 10-20 MiB,
// well within the 200 MiB bound: what is alive stays small whatever the bundle's size. The factor
// is read at every GC, so it can be set once the command runs. A node command line that sets it
// itself is left alone.
import { setFlagsFromString } from 'node:v8'

const flag = '--heap-growing-percent'
/** The old generation's limit after a full GC: four times what survived it. */
const growingPercent = 300

/** Lets the old generation grow in large steps for the rest of the process; false when the command line chose. */
export function growOldGenerationInLargeSteps(execArgv: readonly string[]): boolean {
  if (execArgv.some((arg) => arg.replaceAll('_', '-').startsWith(flag))) return false
  setFlagsFromString(`${flag}=${growingPercent}`)
  return true
}
