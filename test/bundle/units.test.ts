// The small pure parts of the bundle reader: magic bytes, source names, and the spool (its bound, and tee).
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { fileChunks, minLentChunk } from '../../src/bundle/lent-chunks.js'
import { sniff } from '../../src/bundle/magic.js'
import { isFullReference, parseSourceName, renamePath, selected } from '../../src/bundle/naming.js'
import { ContentMismatchError } from '../../src/bundle/sink.js'
import { Spool } from '../../src/bundle/spool.js'
import { digestBytes } from '../../src/core/digest.js'

t.test('sniff: compressions by their magic, tar by ustar at 257, anything else undefined', async (t) => {
  const tarHead = Buffer.alloc(512)
  tarHead.write('ustar\0', 257, 'latin1')
  t.equal(sniff(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip')
  t.equal(sniff(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd')
  t.equal(sniff(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0])), 'xz')
  t.equal(sniff(Buffer.from('BZh91AY')), 'bzip2')
  t.equal(sniff(tarHead), 'tar')
  t.equal(sniff(Buffer.from('{"schemaVersion":2}')), undefined)
  t.equal(sniff(Buffer.alloc(0)), undefined)
})

t.test('parseSourceName: the host is split off, Docker Hub names normalised', async (t) => {
  t.same(parseSourceName('gcr.io/anthos-baremetal-release/foo:1.8.0'), {
    domain: 'gcr.io',
    path: 'anthos-baremetal-release/foo',
    tag: '1.8.0',
  })
  t.same(parseSourceName('127.0.0.1:5000/a/b'), { domain: '127.0.0.1:5000', path: 'a/b' })
  t.same(parseSourceName('ubuntu:22.04'), { domain: 'docker.io', path: 'library/ubuntu', tag: '22.04' })
  t.same(parseSourceName('bitnami/redis:7'), { domain: 'docker.io', path: 'bitnami/redis', tag: '7' })
  const digest = `sha256:${'a'.repeat(64)}`
  t.same(parseSourceName(`quay.io/x/y@${digest}`), { domain: 'quay.io', path: 'x/y', digest })
  t.equal(parseSourceName('Gcr.io/X/Y:1'), undefined, 'uppercase paths are no repository')
  t.equal(parseSourceName('x/y:bad tag'), undefined)
  t.ok(isFullReference('gcr.io/x/y:1.0'))
  t.notOk(isFullReference('1.0'), 'a ref.name that is only a tag')
})

t.test('the spool holds at most its budget plus one blob, and cleans up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-spool-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const spool = new Spool(100, dir)
  const first = await spool.write([randomBytes(80)], 80)
  const second = await spool.write([randomBytes(80)], 80)
  t.equal(spool.peak, 160, 'admitted while what is spooled (80) fits the budget (100)')
  let thirdDone = false
  const third = spool.write([randomBytes(30)], 30).then((blob) => {
    thirdDone = true
    return blob
  })
  // Give the third write every chance to run: it must still be waiting for room.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  t.notOk(thirdDone, 'a blob waits while more than the budget is spooled')
  await first.release()
  await (await third).release()
  t.equal(spool.peak, 160, 'never more than the budget plus one blob')
  await second.release()
  const big = await spool.write([randomBytes(500)], 500)
  t.equal(spool.peak, 500, 'a blob larger than the budget is admitted alone')
  await big.release()
  await spool.close()
  t.same(await readdir(dir), [], 'nothing left behind')
})

t.test('tee: an upload reads a blob while it is being written, and a mismatch ends it with an error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-spool-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const spool = new Spool(1024 * 1024, dir)
  const first = randomBytes(64 * 1024)
  const second = randomBytes(64 * 1024)
  const whole = Buffer.concat([first, second])
  let letSecondThrough!: () => void
  const gate = new Promise<void>((resolve) => (letSecondThrough = resolve))
  async function* slowly(): AsyncGenerator<Buffer> {
    yield first
    await gate
    yield second
  }
  const { open, spooled } = spool.tee(slowly(), whole.length, digestBytes(whole))
  const reader = open()[Symbol.asyncIterator]()
  const head = await reader.next()
  t.ok(Buffer.from(head.value as Buffer).equals(first), 'the first bytes arrive before the rest was read')
  letSecondThrough()
  const rest: Buffer[] = []
  for (let next = await reader.next(); next.done !== true; next = await reader.next()) rest.push(next.value as Buffer)
  t.ok(Buffer.concat([first, ...rest]).equals(whole), 'then the rest, byte-exact')
  const blob = await spooled
  const again: Buffer[] = []
  for await (const chunk of open()) again.push(chunk as Buffer)
  t.ok(Buffer.concat(again).equals(whole), 'a retry reads it again from the start')
  await blob.release()

  const wrong = spool.tee([whole], whole.length, digestBytes(Buffer.from('something else')))
  await t.rejects(
    (async () => {
      for await (const chunk of wrong.open()) void chunk
    })(),
    ContentMismatchError,
    'bytes that do not match the digest end with ContentMismatchError, not an end',
  )
  await (await wrong.spooled).release()
  await spool.close()
  t.same(await readdir(dir), [], 'nothing left behind')
})

/** Copies of what `chunks` lends (each chunk is valid until the next is asked for), and how it ended. */
async function taken(chunks: AsyncIterable<Buffer>): Promise<{ bytes: Buffer; sizes: number[]; error?: unknown }> {
  const copies: Buffer[] = []
  try {
    for await (const chunk of chunks) copies.push(Buffer.from(chunk))
  } catch (error) {
    return { bytes: Buffer.concat(copies), sizes: copies.map((c) => c.length), error }
  }
  return { bytes: Buffer.concat(copies), sizes: copies.map((c) => c.length) }
}

t.test('lent chunks: a file range in reused buffers, byte-exact; a spooled mismatch ends before the last chunk', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-lent-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const bytes = randomBytes(3 * 1024 * 1024 + 1000)
  const path = join(dir, 'blob')
  await writeFile(path, bytes)
  const range = bytes.subarray(100, bytes.length - 7)
  const good = await taken(fileChunks(path, 100, bytes.length - 7))
  t.equal(good.error, undefined)
  t.ok(good.bytes.equals(range), 'the range, byte-exact although its buffers were reused')
  t.ok(
    good.sizes.slice(0, -1).every((size) => size >= minLentChunk),
    'every chunk but the last is large enough to be awaited by the socket',
  )
  const cutShort = await taken(fileChunks(path, 0, bytes.length + 10))
  t.match(String(cutShort.error), 'the file ended at byte', 'a file shorter than its range ends with an error')

  const spool = new Spool(8 * 1024 * 1024, dir)
  const tee = spool.tee([bytes.subarray(0, 2_000_000), bytes.subarray(2_000_000)], bytes.length, digestBytes(bytes))
  const lent = await taken(tee.lend())
  t.ok(lent.bytes.equals(bytes), 'a spooled blob, lent as it is written, byte-exact')
  await (await tee.spooled).release()
  const wrong = spool.tee([bytes], bytes.length, digestBytes(range))
  const cut = await taken(wrong.lend())
  t.type(cut.error, ContentMismatchError)
  t.ok(cut.bytes.length < bytes.length, 'a spooled blob that does not match: its last chunk is never given')
  await (await wrong.spooled).release()
  await spool.close()
})

t.test('tee: an upload that keeps up with the writer is lent whole 1 MiB chunks, not each piece as it lands', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-follow-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const spool = new Spool(8 * 1024 * 1024, dir)
  const bytes = randomBytes(3 * 1024 * 1024 + 1000)
  // A decompressor's pipe: 64 KiB at a time, with a turn of the event loop between them.
  async function* piped(): AsyncGenerator<Buffer> {
    for (let at = 0; at < bytes.length; at += 64 * 1024) {
      await new Promise((resolve) => setImmediate(resolve))
      yield bytes.subarray(at, at + 64 * 1024)
    }
  }
  const tee = spool.tee(piped(), bytes.length, digestBytes(bytes))
  const lent = await taken(tee.lend())
  t.equal(lent.error, undefined)
  t.ok(lent.bytes.equals(bytes), 'byte-exact')
  t.same(lent.sizes, [1024 * 1024, 1024 * 1024, 1024 * 1024, 1000], 'each upload write is a whole chunk')
  await (await tee.spooled).release()
  await spool.close()
})

t.test('names: strategies, max depth, include and exclude globs', async (t) => {
  t.equal(renamePath('anthos-baremetal-release/foo', 'keep-path'), 'anthos-baremetal-release/foo')
  t.equal(renamePath('anthos-baremetal-release/foo', 'flatten'), 'anthos-baremetal-release-foo')
  t.equal(renamePath('anthos-baremetal-release/foo', 'basename'), 'foo')
  t.equal(renamePath('a/b/c/foo', 'keep-path', 2), 'a-b-c/foo', 'leading components joined')
  t.equal(renamePath('a/b/c/foo', 'keep-path', 1), 'a-b-c-foo')
  t.equal(renamePath('a/foo', 'keep-path', 3), 'a/foo', 'shallow enough already')
  t.ok(selected('gcr.io/x/multi:2.0', ['gcr.io/x/*'], []), '* matches within a component, tag included')
  t.notOk(selected('gcr.io/x/y/z:1', ['gcr.io/x/*'], []), 'but not across one')
  t.ok(selected('gcr.io/x/y/z:1', ['gcr.io/**'], []), '** crosses components')
  t.ok(selected('gcr.io/x/multi:2.0', ['gcr.io/x/multi'], []), 'a name without its tag matches')
  t.notOk(selected('gcr.io/x/multi:2.0', [], ['**/multi']), 'exclude wins')
  t.ok(selected(undefined, [], ['gcr.io/**']), 'unnamed images are matched as "unnamed"')
})
