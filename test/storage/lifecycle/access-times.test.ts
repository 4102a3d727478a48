// The pull/push-time recorder on a real filesystem store: requests only touch memory (no write per
// pull), a flush writes each changed repository once, a new recorder (a restart) reads the times
// back, and two recorders on one store (replicas) merge rather than overwrite.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { Digest } from '../../../src/core/digest.js'
import type { StorageDriver } from '../../../src/storage/driver/driver.js'
import { FilesystemDriver } from '../../../src/storage/driver/filesystem.js'
import { AccessTimes } from '../../../src/storage/lifecycle/access-times.js'

const a = `sha256:${'a'.repeat(64)}` as Digest
const b = `sha256:${'b'.repeat(64)}` as Digest

/** A filesystem driver that counts the files written through it. */
function counting(driver: FilesystemDriver): { driver: StorageDriver; writes: () => number } {
  let writes = 0
  const wrapped = Object.create(driver) as StorageDriver
  // Called on the driver itself: its private fields are not reachable through the prototype.
  wrapped.getContent = (path) => driver.getContent(path)
  wrapped.list = (path) => driver.list(path)
  wrapped.putContent = async (path, content) => {
    writes++
    return driver.putContent(path, content)
  }
  return { driver: wrapped, writes: () => writes }
}

t.test('pulls stay in memory until a flush writes each repository once; a restart reads them back', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-times-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const { driver, writes } = counting(new FilesystemDriver(root))
  let clock = 1000
  const times = new AccessTimes(driver, () => clock)
  times.pushed('team/app', a, 'v1')
  for (let i = 0; i < 1000; i++) {
    clock++
    times.pulled('team/app', a, 'v1')
    times.pulled('_cache/gcr.io/pause', b)
  }
  t.equal(writes(), 0, 'a thousand pulls wrote nothing')
  t.same(await times.manifest('team/app', a), { pushTime: 1000, pullTime: 2000 })
  t.same(await times.tag('team/app', 'v1'), { pushTime: 1000, pullTime: 2000 })
  await times.flush()
  t.equal(writes(), 2, 'one write per changed repository')
  await times.flush()
  t.equal(writes(), 2, 'nothing changed, nothing written')

  const restarted = new AccessTimes(new FilesystemDriver(root))
  t.same(await restarted.manifest('team/app', a), { pushTime: 1000, pullTime: 2000 }, 'read back after a restart')
  t.same(await restarted.manifest('_cache/gcr.io/pause', b), { pullTime: 2000 })
  t.same(await restarted.repositories(), ['_cache/gcr.io/pause', 'team/app'])
})

t.test('two recorders on one store merge: the newest time wins, forgotten entries stay forgotten', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-times-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const one = new AccessTimes(new FilesystemDriver(root), () => 5000)
  const two = new AccessTimes(new FilesystemDriver(root), () => 7000)
  one.pulled('team/app', a)
  one.pulled('team/app', b)
  await one.flush()
  two.pulled('team/app', a)
  await two.flush()
  one.pulled('team/app', a) // older than two's
  await one.flush()
  const reader = new AccessTimes(new FilesystemDriver(root))
  t.same(await reader.manifest('team/app', a), { pullTime: 7000 }, 'the newer pull of the other replica is kept')
  t.same(await reader.manifest('team/app', b), { pullTime: 5000 })
  await one.forget('team/app', [b])
  await one.flush()
  t.same(await new AccessTimes(new FilesystemDriver(root)).manifest('team/app', b), {}, 'a forgotten manifest is not merged back')
})

t.test('memory stays within its bound with many repositories; times let go of are read back from storage', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-times-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const { driver, writes } = counting(new FilesystemDriver(root))
  let clock = 1000
  const bound = 100
  const times = new AccessTimes(driver, () => clock, bound)
  const repositories = 400
  for (let i = 0; i < repositories; i++) {
    clock++
    times.pushed(`_cache/gcr.io/lib/r${i}`, a, 'v1')
    times.pulled(`_cache/gcr.io/lib/r${i}`, b)
  }
  t.equal(times.entries, repositories * 3, 'what is not written yet stays in memory')
  await times.flush()
  t.equal(writes(), repositories, 'every repository written once')
  t.ok(times.entries <= bound, `within the bound once written (${times.entries} of ${bound} entries)`)
  // Reads of every repository: each comes back from its file, and memory stays bounded.
  for (let i = 0; i < repositories; i++) {
    t.same(await times.manifest(`_cache/gcr.io/lib/r${i}`, a), { pushTime: 1001 + i }, `r${i}'s push time read back`)
    t.same(await times.tag(`_cache/gcr.io/lib/r${i}`, 'v1'), { pushTime: 1001 + i })
    t.same(await times.manifest(`_cache/gcr.io/lib/r${i}`, b), { pullTime: 1001 + i })
    if (times.entries > bound) t.fail(`${times.entries} entries after reading r${i}`)
  }
  t.equal(writes(), repositories, 'reads write nothing')
  // A pull of a repository no longer in memory merges with its file rather than replacing it.
  clock = 9000
  times.pulled('_cache/gcr.io/lib/r0', a)
  await times.flush()
  const restarted = new AccessTimes(new FilesystemDriver(root))
  t.same(await restarted.manifest('_cache/gcr.io/lib/r0', a), { pushTime: 1001, pullTime: 9000 })
  t.same(await restarted.manifest('_cache/gcr.io/lib/r0', b), { pullTime: 1001 }, 'the other times of that repository kept')
  t.equal((await restarted.repositories()).length, repositories)
})
