// The S3 driver against a misbehaving endpoint (test/helpers/s3-fault-proxy.ts in front of
// s3rver): 500s, 503 SlowDown and a stalled part are retried and the object still lands exact;
// conditional writes are detected where the store has them (and not on s3rver), and a second
// commit of one blob is then refused by the store and resolves as success without a 500; a
// request waiting for a free socket is not failed as a connection timeout.
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import t from 'tap'
import { FileExistsError } from '../../../src/storage/driver/driver.js'
import { S3Driver } from '../../../src/storage/driver/s3.js'
import { BlobStore } from '../../../src/storage/blob-store.js'
import { digestBytes } from '../../../src/core/digest.js'
import { eventually } from '../../helpers/eventually.js'
import { PseudoRandomSource } from '../../helpers/pseudo-random.js'
import { startS3Server } from '../../helpers/s3-server.js'
import { startS3FaultProxy } from '../../helpers/s3-fault-proxy.js'
import { readAll } from './driver-contract.js'

const MiB = 1024 * 1024
const s3 = await startS3Server()
t.teardown(() => s3.close())

function bytes(length: number, seed: string): Buffer {
  const source = new PseudoRandomSource(seed)
  const chunks: Buffer[] = []
  for (let left = length; left > 0; left -= MiB) chunks.push(source.next(Math.min(left, MiB)))
  return Buffer.concat(chunks)
}

t.test('500, 503 SlowDown and a stalled part are retried; the object lands exact', async (t) => {
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(() => proxy.close())
  const driver = await S3Driver.create({ ...s3.driverOptions('faults'), endpoint: proxy.endpoint, idleTimeoutMs: 3000 })
  proxy.inject({ operation: 'UploadPart', kind: 500 })
  proxy.inject({ operation: 'UploadPart', kind: 503 })
  proxy.inject({ operation: 'UploadPart', kind: 'stall' })
  proxy.inject({ operation: 'CompleteMultipartUpload', kind: 503 })
  proxy.inject({ operation: 'GetObject', kind: 500 })
  const content = bytes(40 * MiB, 'faults')
  proxy.requests.length = 0
  const writer = await driver.writer('blobs/faulty')
  await pipeline(Readable.from([content]), writer.stream)
  await writer.commit()
  const count = (operation: string): number => proxy.requests.filter((r) => r === operation).length
  t.equal(count('UploadPart'), 3 + 3, '3 parts, 3 of them sent again')
  t.equal(count('CompleteMultipartUpload'), 2)
  t.ok((await readAll(await driver.read('blobs/faulty'))).equals(content), 'byte-exact, the read retried too')
})

t.test('requests queued behind busy sockets wait for one: only connecting counts against the connect timeout', async (t) => {
  const proxy = await startS3FaultProxy(s3.endpoint)
  t.teardown(() => proxy.close())
  const driver = await S3Driver.create({
    ...s3.driverOptions('queued'),
    endpoint: proxy.endpoint,
    maxSockets: 1,
    connectTimeoutMs: 200,
    idleTimeoutMs: 3000,
  })
  await driver.putContent('small/object', 'x')
  // The stalled GET holds the only socket until its idle timeout (then it is retried): the stats
  // queue behind it far longer than the connect timeout, and must not fail for it.
  proxy.inject({ operation: 'GetObject', kind: 'stall' })
  const stalled = driver.getContent('small/object')
  await eventually(() => proxy.requests.includes('GetObject'), { message: 'the GET to reach the store' })
  const [content, ...stats] = await Promise.all([stalled, ...Array.from({ length: 4 }, () => driver.stat('small/object'))])
  t.equal(content?.toString(), 'x', 'the stalled GET was retried')
  t.same(
    stats.map((info) => info?.size),
    [1, 1, 1, 1],
    'every queued stat answered',
  )
})

t.test('conditional writes: detected on a store that has them, not on s3rver', async (t) => {
  const plain = await S3Driver.create(s3.driverOptions('plain'))
  t.equal(plain.conditionalWrites, false, 's3rver ignores If-None-Match: the driver falls back')
  const proxy = await startS3FaultProxy(s3.endpoint, { conditionalWrites: true })
  t.teardown(() => proxy.close())
  const driver = await S3Driver.create({ ...s3.driverOptions('conditional'), endpoint: proxy.endpoint })
  t.equal(driver.conditionalWrites, true)

  const writeOnce = async (path: string, content: Buffer): Promise<void> => {
    const writer = await driver.writer(path, { ifAbsent: true })
    await pipeline(Readable.from([content]), writer.stream)
    await writer.commit()
  }
  const first = bytes(20 * MiB, 'first')
  await writeOnce('x/big', first)
  await t.rejects(writeOnce('x/big', bytes(20 * MiB, 'second')), FileExistsError, 'a multipart commit over an existing object is refused')
  await writeOnce('x/small', Buffer.from('one'))
  await t.rejects(writeOnce('x/small', Buffer.from('two')), FileExistsError, 'so is a single PutObject')
  t.ok((await readAll(await driver.read('x/big'))).equals(first), 'the first write stays')
  t.equal((await driver.getContent('x/small'))?.toString(), 'one')

  // Two commits of one digest at once: both resolve, one object, never an error.
  const store = new BlobStore(driver)
  const blob = bytes(17 * MiB, 'race')
  const digest = digestBytes(blob)
  const sizes = await Promise.all([1, 2].map(() => store.write(digest, Readable.from([blob]), blob.length)))
  t.same(sizes, [blob.length, blob.length])
  t.equal(await store.size(digest), blob.length)
})

t.test('the janitor: s3rver cannot list multipart uploads, and the driver says so rather than guess', async (t) => {
  const driver = await S3Driver.create(s3.driverOptions('janitor'))
  t.equal(await driver.abortStaleUploads(new Date()), undefined)
})
