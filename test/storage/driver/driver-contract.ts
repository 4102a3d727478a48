// The StorageDriver contract: every driver runs this suite, so the memory driver used by fast
// tests cannot drift from the backends that run in production.
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setImmediate as tick } from 'node:timers/promises'
import type { Test } from 'tap'
import type { StorageDriver } from '../../../src/storage/driver/driver.js'

export type MakeDriver = () => Promise<{ driver: StorageDriver; cleanup(): Promise<void> }>

/** What differs between backends by design, not by defect. */
export interface ContractOptions {
  /**
   * False for object stores, where `a` and `a/b` can both exist and checking for it would cost
   * requests on every write: the driver then does not reject conflicting file and directory paths.
   */
  rejectsPathConflicts?: boolean
  /**
   * True when the server under test writes objects in place, so a reader can see a partial one
   * (s3rver does; S3 itself publishes each PUT atomically): the poll for partial content is skipped.
   */
  serverWritesInPlace?: boolean
}

const notFound = { name: 'PathNotFoundError' }

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

export function write(stream: Writable, chunk: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())))
}

export async function writeFile(driver: StorageDriver, path: string, content: Buffer | string): Promise<void> {
  const writer = await driver.writer(path)
  await pipeline(Readable.from([Buffer.from(content)]), writer.stream)
  await writer.commit()
}

async function text(driver: StorageDriver, path: string): Promise<string | undefined> {
  return (await driver.getContent(path))?.toString()
}

export function driverContract(t: Test, makeDriver: MakeDriver, options: ContractOptions = {}): void {
  const check = (name: string, fn: (t: Test, driver: StorageDriver) => Promise<void>): void => {
    t.test(name, async (t) => {
      const { driver, cleanup } = await makeDriver()
      t.teardown(cleanup)
      await fn(t, driver)
    })
  }

  check('absent paths', async (t, d) => {
    await d.putContent('file', 'x')
    for (const path of ['missing', 'dir/missing', 'file/below']) {
      t.equal(await d.stat(path), undefined, `stat ${path}`)
      t.equal(await d.getContent(path), undefined, `getContent ${path}`)
      t.same(await d.list(path), [], `list ${path}`)
      await t.rejects(d.read(path), notFound, `read ${path}`)
      await t.rejects(d.move(path, 'elsewhere'), notFound, `move ${path}`)
      await t.resolves(d.delete(path), `delete ${path}`)
    }
    t.same(await d.list('file'), [], 'a file has no children')
    await d.putContent('dir/child', 'y')
    await t.rejects(d.read('dir'), notFound, 'a directory cannot be read')
    t.equal(await d.getContent('dir'), undefined, 'a directory has no content')
    t.equal(await d.stat('elsewhere'), undefined, 'a failed move creates nothing')
  })

  check('putContent, getContent and stat', async (t, d) => {
    await d.putContent('a/b/c', 'hello world')
    t.same(await d.getContent('a/b/c'), Buffer.from('hello world'))
    const info = await d.stat('a/b/c')
    t.match(info, { path: 'a/b/c', size: 11, isDirectory: false })
    t.ok(info?.modTime instanceof Date)
    t.match(await d.stat('a/b'), { path: 'a/b', size: 0, isDirectory: true })
    await d.putContent('a/b/d', 'more')
    // On S3 the answer comes from a one-key page of a listing that has more pages.
    t.match(await d.stat('a/b'), { path: 'a/b', size: 0, isDirectory: true }, 'a directory of several files')
    await d.putContent('a/b/c', new Uint8Array([1, 2]))
    t.same(await d.getContent('a/b/c'), Buffer.from([1, 2]), 'replaced entirely, no residue')
    await d.putContent('empty', '')
    t.same(await d.getContent('empty'), Buffer.alloc(0))
    t.match(await d.stat('empty'), { size: 0, isDirectory: false })
  })

  check('read ranges', async (t, d) => {
    await d.putContent('f', '0123456789')
    const range = async (start?: number, end?: number): Promise<string> => (await readAll(await d.read('f', { start, end }))).toString()
    t.equal(await range(), '0123456789')
    t.equal(await range(2), '23456789')
    t.equal(await range(2, 4), '234', 'end is inclusive')
    t.equal(await range(0, 0), '0', 'first byte')
    t.equal(await range(9, 9), '9', 'last byte')
    t.equal(await range(9), '9')
    t.equal(await range(3, 99), '3456789', 'end past EOF is clamped')
    t.equal(await range(10), '', 'start at EOF reads nothing')
    t.equal(await range(5, 4), '', 'end before start reads nothing')
    await t.rejects(d.read('f', { start: -1 }), RangeError)
    await t.rejects(d.read('f', { end: 1.5 }), RangeError)
    await d.putContent('empty', '')
    t.equal((await readAll(await d.read('empty'))).length, 0, 'empty file')
  })

  check('read honours its signal', async (t, d) => {
    await d.putContent('f', Buffer.alloc(4 * 1024 * 1024, 7))
    await t.rejects(d.read('f', { signal: AbortSignal.abort() }), { name: 'AbortError' }, 'already aborted')
    const controller = new AbortController()
    const stream = await d.read('f', { signal: controller.signal })
    const sink = new Writable({ highWaterMark: 1, write: (_chunk, _enc, cb) => setTimeout(cb, 5) })
    const piping = pipeline(stream, sink)
    controller.abort()
    await t.rejects(piping, { name: 'AbortError' }, 'aborted mid-stream')
  })

  check('non-append writer is invisible until commit', async (t, d) => {
    await d.putContent('dir/other', 'o')
    const w = await d.writer('dir/new')
    t.equal(w.size, 0)
    await write(w.stream, 'abc')
    t.equal(w.size, 3, 'size counts written bytes')
    await write(w.stream, Buffer.from('de'))
    t.equal(w.size, 5)
    t.equal(await d.stat('dir/new'), undefined, 'not visible before commit')
    t.same(await d.list('dir'), ['other'])
    await w.commit()
    t.equal(await text(d, 'dir/new'), 'abcde', 'commit ends the stream itself')
    t.same(await d.list('dir'), ['new', 'other'])
    await t.resolves(w.commit(), 'commit is idempotent')
    await t.resolves(w.cancel(), 'cancel after commit is a no-op')
    t.equal(await text(d, 'dir/new'), 'abcde')
  })

  check('non-append writer replaces on commit, and not at all on cancel', async (t, d) => {
    await d.putContent('f', 'old content')
    const w = await d.writer('f')
    await write(w.stream, 'new')
    t.equal(await text(d, 'f'), 'old content', 'old content until commit')
    await w.commit()
    t.equal(await text(d, 'f'), 'new')
    const cancelled = await d.writer('f')
    await write(cancelled.stream, 'discarded')
    await cancelled.cancel()
    await t.resolves(cancelled.cancel(), 'cancel is idempotent')
    await t.rejects(cancelled.commit(), 'commit after cancel fails')
    t.equal(await text(d, 'f'), 'new')
    const fresh = await d.writer('g/h')
    await write(fresh.stream, 'x')
    await fresh.cancel()
    t.equal(await d.stat('g/h'), undefined, 'nothing left after cancel')
    t.equal(await d.stat('g'), undefined, 'not even the folder')
  })

  check('append writer', async (t, d) => {
    const first = await d.writer('up/data', { append: true })
    t.equal(first.size, 0, 'a new file starts empty')
    await pipeline(Readable.from([Buffer.from('abc')]), first.stream)
    t.equal(first.size, 3)
    await first.commit()
    const second = await d.writer('up/data', { append: true })
    t.equal(second.size, 3, 'size starts at the existing size')
    await write(second.stream, 'def')
    t.equal(second.size, 6)
    await second.commit()
    t.equal(await text(d, 'up/data'), 'abcdef')
    const third = await d.writer('up/data', { append: true })
    await write(third.stream, 'ghi')
    await third.cancel()
    t.equal(await text(d, 'up/data'), 'abcdefghi', 'cancel keeps the bytes already written')
    t.match(await d.stat('up/data'), { size: 9 })
  })

  check('writer pipes from another read', async (t, d) => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'z')
    await writeFile(d, 'src', big)
    const w = await d.writer('copy')
    await pipeline(await d.read('src'), w.stream)
    t.equal(w.size, big.length)
    await w.commit()
    t.ok((await d.getContent('copy'))?.equals(big))
  })

  check('pipeline errors leave nothing behind', async (t, d) => {
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from('partial')
      throw new Error('boom')
    }
    const w = await d.writer('f')
    await t.rejects(pipeline(Readable.from(failing()), w.stream), { message: 'boom' })
    await t.rejects(w.commit(), 'commit after a stream error fails')
    await t.resolves(w.cancel())
    t.equal(await d.stat('f'), undefined)

    const controller = new AbortController()
    const aborted = await d.writer('g', { signal: controller.signal })
    await write(aborted.stream, 'x')
    controller.abort()
    await t.rejects(aborted.commit(), { name: 'AbortError' }, 'an aborted writer cannot commit')
    t.equal(await d.stat('g'), undefined)
    await t.rejects(d.writer('h', { signal: AbortSignal.abort() }), { name: 'AbortError' })
  })

  check('concurrent writers: last commit wins, never partial', async (t, d) => {
    const size = 256 * 1024
    const a = Buffer.alloc(size, 'a')
    const b = Buffer.alloc(size, 'b')
    const [w1, w2] = await Promise.all([d.writer('c/x'), d.writer('c/x')])
    for (let offset = 0; offset < size; offset += 64 * 1024) {
      await write(w1.stream, a.subarray(offset, offset + 64 * 1024))
      await write(w2.stream, b.subarray(offset, offset + 64 * 1024))
    }
    const seen = new Set<string>()
    let polling = options.serverWritesInPlace !== true
    const poll = (async () => {
      while (polling) {
        const content = await d.getContent('c/x')
        seen.add(content === undefined ? 'absent' : content.equals(a) ? 'a' : content.equals(b) ? 'b' : 'partial')
        await tick()
      }
    })()
    await w1.commit()
    t.ok((await d.getContent('c/x'))?.equals(a))
    await w2.commit()
    t.ok((await d.getContent('c/x'))?.equals(b), 'last commit wins')
    polling = false
    await poll
    t.notOk(seen.has('partial'), `observed: ${[...seen].join(', ')}`)
  })

  check('move', async (t, d) => {
    await d.putContent('from/f', 'one')
    await d.move('from/f', 'to/deep/f')
    t.equal(await text(d, 'to/deep/f'), 'one')
    t.equal(await d.stat('from/f'), undefined)
    await d.putContent('other', 'two')
    await d.move('other', 'to/deep/f')
    t.equal(await text(d, 'to/deep/f'), 'two', 'replaces the destination')
    t.equal(await d.stat('other'), undefined)
    await t.rejects(d.move('other', 'to/deep/f'), notFound)
    t.equal(await text(d, 'to/deep/f'), 'two', 'a failed move keeps the destination')
  })

  check('delete', async (t, d) => {
    await d.putContent('repo/a/link', '1')
    await d.putContent('repo/a/sub/link', '2')
    await d.putContent('repo/ab', 'sibling sharing a prefix')
    await d.putContent('repo/c', '3')
    await d.delete('repo/c')
    t.equal(await d.stat('repo/c'), undefined, 'a file')
    await d.delete('repo/a')
    t.equal(await d.stat('repo/a'), undefined, 'a directory tree')
    t.equal(await d.stat('repo/a/sub/link'), undefined)
    t.equal(await text(d, 'repo/ab'), 'sibling sharing a prefix')
    t.same(await d.list('repo'), ['ab'])
  })

  check('list', async (t, d) => {
    for (const path of ['r/zeta', 'r/alpha/x', 'r/Beta', 'r/alpha/y', 'r/m/n/o']) await d.putContent(path, path)
    t.same(await d.list('r'), ['Beta', 'alpha', 'm', 'zeta'], 'direct children, sorted')
    t.same(await d.list('r/alpha'), ['x', 'y'])
    const pending = await d.writer('r/pending')
    await write(pending.stream, 'x')
    t.same(await d.list(''), ['r'], 'the root lists no driver internals')
    await pending.cancel()
  })

  if (options.rejectsPathConflicts !== false)
    check('conflicting file and directory paths are rejected', async (t, d) => {
      await d.putContent('file', 'x')
      await d.putContent('dir/child', 'y')
      await t.rejects(d.putContent('file/below', 'z'), 'under a file')
      await t.rejects(d.putContent('dir', 'z'), 'over a directory')
      const w = await d.writer('dir')
      await t.rejects(w.commit())
      t.equal(await text(d, 'file'), 'x')
      t.equal(await text(d, 'dir/child'), 'y')
    })

  check('unclean paths are rejected', async (t, d) => {
    const bad = ['../x', '/abs', 'a//b', 'a/./b', 'a/../b', 'a/', '', 'a\\b']
    for (const path of bad) {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['stat', () => d.stat(path)],
        ['read', () => d.read(path)],
        ['writer', () => d.writer(path)],
        ['append writer', () => d.writer(path, { append: true })],
        ['getContent', () => d.getContent(path)],
        ['putContent', () => d.putContent(path, 'x')],
        ['move from', () => d.move(path, 'ok')],
        ['move to', () => d.move('ok', path)],
        ['delete', () => d.delete(path)],
      ]
      if (path !== '') calls.push(['list', () => d.list(path)])
      for (const [method, call] of calls) {
        await t.rejects(call(), { message: /invalid storage path/ }, `${method} ${JSON.stringify(path)}`)
      }
    }
  })
}
