// BlobActivity: a deletion never runs under a reader or writer of the same digest, skips what was
// written since the sweep began, and a user arriving during a deletion waits for it to finish.
import t from 'tap'
import { BlobActivity } from '../../../src/storage/lifecycle/blob-activity.js'

t.test('a blob in use or written since the mark is not deleted', async (t) => {
  let clock = 1000
  const activity = new BlobActivity(() => clock)
  const end = await activity.begin('sha256:a')
  let removed = 0
  t.equal(await activity.delete('sha256:a', 0, async () => void removed++), false, 'not under a reader')
  end()
  t.equal(await activity.delete('sha256:a', 0, async () => void removed++), true, 'once the reader is done')
  clock = 2000
  await activity.using('sha256:b', async () => {}, true)
  t.equal(await activity.delete('sha256:b', 1500, async () => void removed++), false, 'written after the sweep began marking')
  t.equal(await activity.delete('sha256:b', 2500, async () => void removed++), true, 'written before it')
  t.equal(removed, 2)
})

t.test('a reader arriving during a deletion waits for it', async (t) => {
  const activity = new BlobActivity()
  const order: string[] = []
  let finish: () => void = () => {}
  const deletion = activity.delete('sha256:c', 0, () =>
    new Promise<void>((resolve) => (finish = resolve)).then(() => void order.push('deleted')),
  )
  const reader = activity.begin('sha256:c').then((end) => {
    order.push('read')
    end()
  })
  await Promise.resolve()
  t.same(order, [], 'the reader waits')
  finish()
  await Promise.all([deletion, reader])
  t.same(order, ['deleted', 'read'])
})
