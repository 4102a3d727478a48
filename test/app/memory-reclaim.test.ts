// The memory of finished transfers is given back (#18): once the process-wide block budget has
// held nothing for a moment, one major GC runs; not while a block is held, and once per lull.
import t from 'tap'
import { majorGc, reclaimWhenIdle } from '../../src/app/memory-reclaim.js'
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
