import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import t from 'tap'
import type { Test } from 'tap'
import { FilesystemDriver } from '../../../src/storage/driver/filesystem.js'
import { driverContract, write } from './driver-contract.js'

const MiB = 1024 * 1024

async function tempRoot(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-fs-driver-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  return root
}

driverContract(t, async () => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-fs-driver-'))
  return { driver: new FilesystemDriver(root), cleanup: () => rm(root, { recursive: true, force: true }) }
})

t.test('streams a 64 MiB file without buffering it', async (t) => {
  const driver = new FilesystemDriver(await tempRoot(t))
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }
  async function* source(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 64; i++) {
      sample()
      // A fresh buffer per chunk, as a network source gives: retaining them would show in RSS.
      yield Buffer.from(chunk)
    }
  }
  const writer = await driver.writer('big/blob')
  await pipeline(source(), writer.stream)
  await writer.commit()
  t.equal(writer.size, 64 * MiB)

  const hash = createHash('sha256')
  let bytes = 0
  for await (const piece of await driver.read('big/blob')) {
    sample()
    hash.update(piece as Buffer)
    bytes += (piece as Buffer).length
  }
  const expected = createHash('sha256')
  for (let i = 0; i < 64; i++) expected.update(chunk)
  t.equal(bytes, 64 * MiB)
  t.equal(hash.digest('hex'), expected.digest('hex'), 'bytes survive the round trip')
  t.comment(`RSS growth while streaming 64 MiB: ${((peak - baseline) / MiB).toFixed(1)} MiB`)
})

t.test('delete and move prune emptied directories up to the root', async (t) => {
  const root = await tempRoot(t)
  const driver = new FilesystemDriver(root)
  await driver.putContent('repositories/library/alpine/_layers/sha256/abc/link', 'x')
  await driver.putContent('repositories/library/keep', 'y')
  await driver.delete('repositories/library/alpine/_layers/sha256/abc/link')
  t.notOk(existsSync(join(root, 'repositories/library/alpine')), 'the emptied tree is gone')
  t.ok(existsSync(join(root, 'repositories/library/keep')), 'non-empty parents stay')
  await driver.putContent('uploads/u1/data', 'z')
  await driver.move('uploads/u1/data', 'blobs/z')
  t.notOk(existsSync(join(root, 'uploads')), 'a move prunes its source folders')
  await driver.delete('repositories')
  await driver.delete('blobs')
  t.ok(existsSync(root), 'the root itself is never removed')
  t.same(await driver.list(''), [])
})

t.test('temp files live under _tmp and are cleaned up', async (t) => {
  const root = await tempRoot(t)
  const driver = new FilesystemDriver(root)
  const committed = await driver.writer('a')
  await write(committed.stream, 'x')
  t.equal((await readdir(join(root, '_tmp'))).length, 1, 'writing into the temp folder')
  await committed.commit()
  const cancelled = await driver.writer('b')
  await cancelled.cancel()
  await driver.putContent('c', 'y')
  t.same(await readdir(join(root, '_tmp')), [], 'nothing left after commit, cancel and putContent')
})

t.test('purgeTemp removes only stale temp files', async (t) => {
  const root = await tempRoot(t)
  const driver = new FilesystemDriver(root)
  t.equal(await driver.purgeTemp(0), 0, 'no temp folder yet')
  await mkdir(join(root, '_tmp'), { recursive: true })
  const stale = join(root, '_tmp', 'left-by-a-crash')
  await writeFile(stale, 'junk')
  const hourAgo = new Date(Date.now() - 3600_000)
  await utimes(stale, hourAgo, hourAgo)
  const live = await driver.writer('live')
  await write(live.stream, 'data')
  t.equal(await driver.purgeTemp(60_000), 1)
  t.notOk(existsSync(stale))
  await live.commit()
  t.equal((await driver.getContent('live'))?.toString(), 'data', 'a live writer is unaffected')
  t.equal(await driver.purgeTemp(0), 0)
})

t.test('read streams use large chunks', async (t) => {
  const driver = new FilesystemDriver(await tempRoot(t))
  await driver.putContent('f', Buffer.alloc(3 * MiB))
  const stream = await driver.read('f')
  t.equal(stream.readableHighWaterMark, MiB)
  const sizes: number[] = []
  for await (const piece of stream) sizes.push((piece as Buffer).length)
  t.same(sizes, [MiB, MiB, MiB])
  const ranged = await driver.read('f', { start: MiB, end: MiB })
  t.same(await ranged.toArray(), [Buffer.alloc(1)], 'a one-byte range is one chunk')
})
