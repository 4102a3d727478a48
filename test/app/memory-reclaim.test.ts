// The memory of finished transfers is given back (#18): once the process-wide block budget has
// held nothing for a moment, one major GC runs; not while a block is held, and once per lull.
// Then the C heap's free pages go back to the system (the sendfile helper's trimMemory()).
import t from 'tap'
import { gcThenTrim, majorGc, reclaimWhenIdle } from '../../src/app/memory-reclaim.js'
import { nativeSendfile } from '../../src/transfer/native-sendfile.js'
import { BlockBudget, blockSize } from '../../src/transfer/shared-blocks.js'
import { eventually } from '../helpers/eventually.js'

t.test('V8 gives a full GC without --expose-gc at start', async (t) => {
  const gc = majorGc()
  t.type(gc, 'function')
  t.doesNotThrow(() => gc!())
})

t.test('a GC runs once the budget is empty for the delay, not while blocks are held', async (t) => {
  const budget = new BlockBudget(4 * blockSize)
  let collected = 0
  const stop = reclaimWhenIdle(budget, () => collected++, 50)
  t.teardown(stop)
  budget.reserve()
  budget.reserve()
  budget.free()
  // One block still held: nothing to reclaim yet, however long it is held.
  budget.free()
  await eventually(() => collected === 1, { message: 'the GC after the last block went back' })
  // A new transfer starts and holds a block: no GC while it runs.
  budget.reserve()
  const before = collected
  budget.free()
  budget.reserve() // the next layer starts within the delay: the pending GC is dropped
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(collected, before, 'no GC while a block is held')
  budget.free()
  await eventually(() => collected === before + 1, { message: 'the GC after that transfer' })
})

t.test('after the GC, the trim runs once, later', async (t) => {
  const calls: string[] = []
  const collect = gcThenTrim(
    () => calls.push('gc'),
    () => calls.push('trim'),
    20,
  )
  collect()
  t.same(calls, ['gc'], 'the GC at once')
  await eventually(() => calls.length === 2, { message: 'the trim' })
  t.same(calls, ['gc', 'trim'])
  const gcOnly: string[] = []
  gcThenTrim(() => gcOnly.push('gc'), undefined)()
  t.same(gcOnly, ['gc'], 'no helper, no trim')
})

const { native, problem } = nativeSendfile()
const glibc = Boolean(
  (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime,
)
const trimSkip = native === undefined ? `no sendfile helper here: ${problem}` : glibc ? false : 'malloc_trim is glibc only'

t.test('the sendfile helper hands free C heap pages back to the system', { skip: trimSkip }, async (t) => {
  t.type(native!.trimMemory, 'function')
  // 64 MiB of malloc'd 32 KiB buffers, every other one kept: what the GC frees lies between live
  // chunks, where glibc keeps it resident until trimmed.
  const kept = allocateHalfKept(2048, 32 * 1024)
  const gc = majorGc()!
  // V8 frees a dead buffer's memory on a background thread after the GC.
  await eventually(
    () => {
      gc()
      return native!.trimMemory!()
    },
    { message: 'free pages released', intervalMs: 100 },
  )
  t.equal(kept.length, 1024, 'the other half stayed alive throughout')
})

/** `count` malloc'd buffers of `size` bytes, every other one returned (the rest is garbage at once). */
function allocateHalfKept(count: number, size: number): Buffer[] {
  const kept: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const buffer = Buffer.allocUnsafeSlow(size).fill(1)
    if (i % 2 === 0) kept.push(buffer)
  }
  return kept
}
