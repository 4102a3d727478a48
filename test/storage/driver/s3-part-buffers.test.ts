// The buffers of sent parts are handed to the next parts instead of 16 MiB allocated anew per
// part (each allocation drove V8 to a full collection of the heap), at most one per budget slot,
// and once dropped their memory is reclaimed at once.
import t from 'tap'
import { PartBudget } from '../../../src/storage/driver/s3-upload.js'
import { eventually } from '../../helpers/eventually.js'

t.test('a sent part buffer fills the next part; other sizes are allocated', async (t) => {
  const budget = new PartBudget(2)
  const first = budget.partBuffer(1024)
  budget.recycle(first)
  t.not(budget.partBuffer(2048), first, 'another part size gets a buffer of its own')
  t.equal(budget.partBuffer(1024), first, 'the same part size gets the spare one')
  t.not(budget.partBuffer(1024), first, 'handed out once')
})

t.test('at most one spare per slot is kept', async (t) => {
  const budget = new PartBudget(2)
  const buffers = [budget.partBuffer(1024), budget.partBuffer(1024), budget.partBuffer(1024)]
  for (const buffer of buffers) budget.recycle(buffer)
  const again = [budget.partBuffer(1024), budget.partBuffer(1024), budget.partBuffer(1024)]
  t.equal(again.filter((buffer) => buffers.includes(buffer)).length, 2, 'two reused, the third allocated')
})

t.test('spares are dropped once no part was sent for a while, and their memory reclaimed then', async (t) => {
  let reclaims = 0
  const budget = new PartBudget(2, { reclaim: () => reclaims++, keepSparesMs: 20 })
  const first = budget.partBuffer(1024)
  budget.recycle(first)
  t.equal(reclaims, 0, 'kept for the next part at first')
  await eventually(() => reclaims === 1)
  t.not(budget.partBuffer(1024), first, 'the spare is gone')
  t.equal(reclaims, 1, 'one reclaim')
})
