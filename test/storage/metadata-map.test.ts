// MetadataMap (storage/metadata-cache.ts) on its own: what a read in flight answers when the cache
// lets go of its key meanwhile. Found by the bench's scale series: with more tags asked for at
// once than the cache holds, lru-cache evicted keys whose reads were in flight and those
// requests failed with "evicted" (500).
import t from 'tap'
import { MetadataMap } from '../../src/storage/metadata-cache.js'

/** A read that answers `value` once released. */
function heldRead(value: string): { read: () => Promise<string>; release: () => void; reads: () => number } {
  let release = (): void => {}
  const answered = new Promise<void>((resolve) => (release = resolve))
  let reads = 0
  return {
    read: async () => {
      reads++
      await answered
      return value
    },
    release: () => release(),
    reads: () => reads,
  }
}

t.test('a key evicted while its read is in flight still gets its answer', async (t) => {
  const map = new MetadataMap<string>(60_000, 2)
  const a = heldRead('A')
  const pending = map.get('a', a.read)
  // Two more keys than the cache holds besides 'a': 'a' (least recently used) is evicted.
  t.equal(await map.get('b', async () => 'B'), 'B')
  t.equal(await map.get('c', async () => 'C'), 'C')
  a.release()
  t.equal(await pending, 'A')
  t.equal(await map.get('c', async () => 'other'), 'C', 'the keys that stayed are still remembered')
})

t.test('a read that fails rejects with its own error', async (t) => {
  const map = new MetadataMap<string>(60_000, 2)
  const failure = new Error('disk on fire')
  await t.rejects(
    map.get('a', async () => {
      throw failure
    }),
    failure,
  )
  t.equal(await map.get('a', async () => 'A'), 'A', 'and is not remembered')
})

t.test("a write during a read wins over the read's answer", async (t) => {
  const map = new MetadataMap<string>(60_000, 10)
  const a = heldRead('old')
  const pending = map.get('a', a.read)
  map.set('a', 'new')
  a.release()
  t.equal(await pending, 'new')
  t.equal(await map.get('a', async () => 'read again'), 'new')
})
