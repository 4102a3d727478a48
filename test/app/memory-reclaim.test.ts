// The memory of finished transfers is given back (#18): once the process-wide block budget has
// held nothing for a moment, one major GC runs; not while a block is held, and once per lull.
// Then the C heap's free pages go back to the system (the sendfile helper's trimMemory()).
// While fills run, the network chunks they copied are collected young: one scavenge per 8 MiB.
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import t from 'tap'
import { composeTransfer } from '../../src/app/compose-transfer.js'
import { gcThenTrim, majorGc, minorGc, reclaimWhenIdle, scavengeEveryBytes, scavengeWhileFilling } from '../../src/app/memory-reclaim.js'
import { Metrics } from '../../src/observability/metrics.js'
import { nativeSendfile } from '../../src/transfer/native-sendfile.js'
import { BlockBudget, blockSize, SharedBlocks } from '../../src/transfer/shared-blocks.js'
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

t.test('V8 gives a scavenge (a young-generation GC) without --expose-gc at start', async (t) => {
  const scavenge = minorGc()
  t.type(scavenge, 'function')
  const kinds: number[] = []
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) kinds.push((entry as PerformanceEntry & { detail: { kind: number } }).detail.kind)
  })
  observer.observe({ entryTypes: ['gc'] })
  t.teardown(() => observer.disconnect())
  scavenge!()
  // GC entries reach the observer asynchronously.
  await eventually(() => kinds.length > 0, { message: 'a GC entry' })
  t.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), 'a minor GC ran')
  t.notOk(kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), 'not a major one')
})

t.test('one scavenge per 8 MiB that fills copy into their blocks, whether or not a block was free', async (t) => {
  const budget = new BlockBudget(4 * blockSize)
  let scavenges = 0
  const stop = scavengeWhileFilling(budget, () => scavenges++)
  // Two fills, 64 KiB chunks as the upstream's socket delivers them; the budget holds 4 of their blocks.
  const fills = [new SharedBlocks(() => 16, budget), new SharedBlocks(() => 16, budget)]
  const chunk = Buffer.alloc(64 * 1024)
  let offset = 0
  for (; offset < 10 * 1024 * 1024; offset += chunk.length) for (const fill of fills) fill.append(chunk, offset)
  t.equal(scavenges, Math.floor((2 * offset) / scavengeEveryBytes), 'one per 8 MiB copied, both fills counted')
  stop()
  fills[0]!.append(chunk, offset)
  t.equal(budget.onCopied, undefined, 'stopped')
  for (const fill of fills) fill.clear()
})

t.test('the composed transfer scavenges while fills copy, until stopped', async (t) => {
  const transfer = composeTransfer({ sendfile: false, metrics: new Metrics({ processMetrics: false }) })
  t.type(transfer.budget.onCopied, 'function', 'fills are counted')
  transfer.stop()
  t.equal(transfer.budget.onCopied, undefined)
  t.equal(transfer.budget.onEmpty, undefined)
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
