// sha256 on a worker thread (the bulk import's hashes): the same digest as node:crypto whatever the
// chunking (chunks larger than a slot, many more chunks than slots), and a blob written with it is
// still refused, with nothing stored, when its bytes do not match.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { BlobStore } from '../../src/storage/blob-store.js'
import { FilesystemDriver } from '../../src/storage/driver/filesystem.js'
import { HashThreads } from '../../src/storage/hash-threads.js'

const sha256 = (chunks: Buffer[]): string => chunks.reduce((h, c) => h.update(c), createHash('sha256')).digest('hex')

t.test('digests match node:crypto, two hashes at once, chunks of every size', async (t) => {
  const threads = new HashThreads()
  t.teardown(() => threads.close())
  const big = [randomBytes(3 * 1024 * 1024 + 17), randomBytes(5), Buffer.alloc(0), randomBytes(1024 * 1024)]
  const small = Array.from({ length: 40 }, (_, i) => randomBytes(1000 + i))
  const a = threads.sha256()
  const b = threads.sha256()
  // Fed without waiting, as a careless caller would: the order is kept and every byte hashed.
  const waits = [...big.map((c) => a.update(c)), ...small.map((c) => b.update(c))]
  await Promise.all(waits)
  t.equal(await a.digest(), sha256(big))
  t.equal(await b.digest(), sha256(small))
  const empty = threads.sha256()
  t.equal(await empty.digest(), sha256([]), 'an empty hash')
})

t.test('a blob hashed on the thread is stored only when it matches', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-hash-threads-'))
  const threads = new HashThreads()
  t.teardown(async () => {
    await threads.close()
    await rm(root, { recursive: true, force: true })
  })
  const told: string[] = []
  const uploadWatch = { begin: () => void told.push('begin'), end: () => void told.push('end') }
  const store = new BlobStore(new FilesystemDriver(root), { hashes: threads, uploadWatch })
  const bytes = randomBytes(2 * 1024 * 1024 + 3)
  const digest = `sha256:${sha256([bytes])}` as Digest
  let verified = false
  t.equal(await store.write(digest, Readable.from([bytes]), bytes.length, undefined, () => (verified = true), true), bytes.length)
  t.ok(verified, 'told once verified')
  t.equal(await store.size(digest), bytes.length, 'stored')
  t.same(told, [], 'a bulk import is not an upload to uploadWatch')
  const again = randomBytes(1024 * 1024)
  await store.write(`sha256:${sha256([again])}` as Digest, Readable.from([again]), again.length)
  t.same(told, ['begin', 'end'], 'an upload written straight to its content address (S3) is')

  const other = `sha256:${sha256([Buffer.from('other')])}` as Digest
  await t.rejects(store.write(other, Readable.from([bytes]), bytes.length, undefined, undefined, true), { code: 'DIGEST_INVALID' })
  t.equal(await store.size(other), undefined, 'nothing stored under a digest the bytes do not have')
})
