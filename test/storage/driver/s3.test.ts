// The S3 driver on s3rver: the driver contract, then what only S3 has (multipart uploads, append
// segments, server-side copies), checked by the S3 requests the driver sends.
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import t from 'tap'
import type { S3Client } from '@aws-sdk/client-s3'
import { pacedScavenges, partsScavengeEveryBytes } from '../../../src/app/memory-reclaim.js'
import { createS3Client, type S3DriverOptions } from '../../../src/storage/driver/s3-client.js'
import { S3Driver } from '../../../src/storage/driver/s3.js'
import { PartBudget, partSizeFor } from '../../../src/storage/driver/s3-upload.js'
import { PseudoRandomSource } from '../../helpers/pseudo-random.js'
import { startS3Server } from '../../helpers/s3-server.js'
import { driverContract, readAll, write } from './driver-contract.js'

const MiB = 1024 * 1024

const s3 = await startS3Server()
t.teardown(() => s3.close())

let prefixes = 0
const freshPrefix = (): string => `t${++prefixes}`

driverContract(t, async () => ({ driver: await S3Driver.create(s3.driverOptions(freshPrefix())), cleanup: async () => {} }), {
  rejectsPathConflicts: false,
  serverWritesInPlace: true,
})

/** A driver whose client records the name of every S3 command it sends. */
async function recordingDriver(options: Partial<S3DriverOptions> = {}): Promise<{ driver: S3Driver; sent: string[] }> {
  const config = { ...s3.driverOptions(freshPrefix()), ...options }
  const client: S3Client = await createS3Client(config)
  const sent: string[] = []
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(String(context.commandName).replace(/Command$/, ''))
      return next(args)
    },
    { step: 'initialize' },
  )
  return { driver: new S3Driver(client, config), sent }
}

/** `length` incompressible bytes, the same for the same seed. */
function pseudoRandom(length: number, seed: number): Buffer {
  const source = new PseudoRandomSource(String(seed))
  const chunks: Buffer[] = []
  for (let left = length; left > 0; left -= MiB) chunks.push(source.next(Math.min(left, MiB)))
  return Buffer.concat(chunks)
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex')
}

t.test('a 20 MiB file goes up in equal 16 MiB parts and comes back exact', async (t) => {
  const { driver, sent } = await recordingDriver()
  const content = pseudoRandom(20 * MiB, 7)
  const writer = await driver.writer('blobs/big/data')
  // Uneven network-sized chunks: part boundaries must not depend on them.
  const chunks = Array.from({ length: Math.ceil(content.length / 100_003) }, (_, i) => content.subarray(i * 100_003, (i + 1) * 100_003))
  await pipeline(Readable.from(chunks), writer.stream)
  t.equal(await driver.stat('blobs/big/data'), undefined, 'invisible before commit')
  await writer.commit()
  t.same(
    sent.filter((c) => c !== 'HeadObject' && c !== 'ListObjectsV2'),
    ['CreateMultipartUpload', 'UploadPart', 'UploadPart', 'CompleteMultipartUpload'],
  )
  t.match(await driver.stat('blobs/big/data'), { size: 20 * MiB, isDirectory: false })
  t.equal(sha256(await readAll(await driver.read('blobs/big/data'))), sha256(content), 'whole object')
  const start = 16 * MiB - 10
  const end = 16 * MiB + 10
  sent.length = 0
  const ranged = await readAll(await driver.read('blobs/big/data', { start, end }))
  t.ok(ranged.equals(content.subarray(start, end + 1)), 'a range across part boundaries')
  t.same(sent, ['GetObject'], 'one ranged GET')
})

t.test('parts are equal, ≥ 16 MiB, and 10,000 of them cover a known size', async (t) => {
  t.equal(partSizeFor(undefined), 16 * MiB)
  t.equal(partSizeFor(100 * MiB), 16 * MiB)
  t.equal(partSizeFor(200 * 1024 * MiB), 21 * MiB, '200 GiB: whole MiBs, 10,000 parts at most')
  t.ok(partSizeFor(200 * 1024 * MiB) * 10_000 >= 200 * 1024 * MiB)
})

t.test('a process-wide budget bounds the parts in flight across writers', async (t) => {
  const config = s3.driverOptions(freshPrefix())
  const client = await createS3Client(config)
  const budget = new PartBudget(2)
  let peak = 0
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'UploadPartCommand') peak = Math.max(peak, budget.inUse)
      return next(args)
    },
    { step: 'initialize' },
  )
  const driver = new S3Driver(client, config, budget)
  const content = pseudoRandom(33 * MiB, 21)
  // Four writers of three parts each would put up to 12 parts in flight without the budget.
  await Promise.all(
    [1, 2, 3, 4].map(async (n) => {
      const writer = await driver.writer(`budget/${n}`)
      await pipeline(Readable.from([content]), writer.stream)
      await writer.commit()
    }),
  )
  t.ok(peak >= 1 && peak <= 2, `at most 2 parts in flight (saw ${peak})`)
  t.equal(budget.inUse, 0, 'every slot given back')
  t.ok((await driver.getContent('budget/3'))?.equals(content))
})

t.test('writes ask for a young-generation GC every 4 MiB copied into parts, across writers', async (t) => {
  let collections = 0
  const { driver } = await recordingDriver({ partMemory: { onCopied: pacedScavenges(partsScavengeEveryBytes, () => collections++) } })
  const content = pseudoRandom(18 * MiB, 23)
  for (const name of ['young/1', 'young/2']) {
    const writer = await driver.writer(name)
    // In 64 KiB chunks, as node:http hands a request body over.
    const chunks = Array.from({ length: content.length / (64 * 1024) }, (_, i) => content.subarray(i * 64 * 1024, (i + 1) * 64 * 1024))
    await pipeline(Readable.from(chunks), writer.stream)
    await writer.commit()
  }
  t.equal(collections, 9, '36 MiB written: 9 GCs')
  t.ok((await driver.getContent('young/2'))?.equals(content), 'the bytes are unchanged')
})

t.test('a cancelled multipart writer leaves nothing visible', async (t) => {
  const { driver } = await recordingDriver()
  const writer = await driver.writer('dir/cancelled')
  await write(writer.stream, pseudoRandom(17 * MiB, 3))
  await writer.cancel()
  t.equal(await driver.stat('dir/cancelled'), undefined)
  t.same(await driver.list('dir'), [])
})

t.test('append sessions add segments; nothing already stored is read or rewritten', async (t) => {
  const { driver, sent } = await recordingDriver()
  const content = pseudoRandom(3 * MiB + 5, 11)
  const cuts = [0, 1000, MiB, 2 * MiB + 7, content.length]
  await driver.putContent('up/data', '')
  for (let i = 0; i + 1 < cuts.length; i++) {
    sent.length = 0
    const writer = await driver.writer('up/data', { append: true })
    t.equal(writer.size, cuts[i], `session ${i + 1} starts at the stored size`)
    await pipeline(Readable.from([content.subarray(cuts[i], cuts[i + 1])]), writer.stream)
    await writer.commit()
    t.same(sent, ['GetObject', 'PutObject', 'PutObject'], `session ${i + 1}: index, segment, index`)
  }
  t.match(await driver.stat('up/data'), { size: content.length, isDirectory: false })
  t.same(await driver.list('up'), ['data'], 'segments are not listed')
  t.ok((await driver.getContent('up/data'))?.equals(content))
  const start = 900
  const end = 2 * MiB + 100
  t.ok((await readAll(await driver.read('up/data', { start, end }))).equals(content.subarray(start, end + 1)), 'a range across segments')
  t.equal((await readAll(await driver.read('up/data', { start: content.length }))).length, 0, 'past the end')
  sent.length = 0
  const whole = await driver.readWhole('up/data')
  t.equal(whole?.size, content.length, 'readWhole: the size of every segment')
  t.ok(whole && (await readAll(whole.stream)).equals(content), 'readWhole: the bytes of every segment')
  t.equal(sent.filter((name) => name === 'HeadObject').length, 0, 'readWhole: no HEAD')

  sent.length = 0
  await driver.move('up/data', 'blobs/x/data')
  t.notOk(sent.includes('CopyObject'), 'several segments are streamed into one object')
  t.ok((await driver.getContent('blobs/x/data'))?.equals(content))
  t.equal(await driver.stat('up/data'), undefined)
  t.equal(await driver.stat('up'), undefined, 'segments are deleted with the file')
})

t.test('readWhole: a whole object and its size in one GetObject; undefined when absent', async (t) => {
  const { driver, sent } = await recordingDriver()
  const content = pseudoRandom(MiB + 3, 5)
  await driver.putContent('whole/data', content)
  await driver.putContent('whole/empty', '')
  sent.length = 0
  const whole = await driver.readWhole('whole/data')
  t.equal(whole?.size, content.length)
  t.ok(whole && (await readAll(whole.stream)).equals(content))
  t.same(sent, ['GetObject'])
  const empty = await driver.readWhole('whole/empty')
  t.equal(empty?.size, 0)
  t.equal(empty && (await readAll(empty.stream)).length, 0)
  t.equal(await driver.readWhole('whole/absent'), undefined)
})

t.test('an append file of one segment moves with one server-side copy', async (t) => {
  const { driver, sent } = await recordingDriver()
  const content = pseudoRandom(MiB, 5)
  const writer = await driver.writer('session/data', { append: true })
  await pipeline(Readable.from([content]), writer.stream)
  await writer.commit()
  sent.length = 0
  await driver.move('session/data', 'blob/data')
  t.ok(sent.includes('CopyObject'))
  t.notOk(sent.includes('GetObject'), 'the bytes are not read back')
  t.ok((await driver.getContent('blob/data'))?.equals(content))
  t.equal(await driver.stat('session'), undefined)
})

t.test('WHEN_SUPPORTED checksums keep bytes exact too: bodies are never streamed aws-chunked', async (t) => {
  const { driver } = await recordingDriver({ requestChecksumCalculation: 'WHEN_SUPPORTED' })
  const content = pseudoRandom(9 * MiB + 3, 13)
  const writer = await driver.writer('f')
  await pipeline(Readable.from([content.subarray(0, 6 * MiB), content.subarray(6 * MiB)]), writer.stream)
  await writer.commit()
  await driver.putContent('small', 'hello')
  t.ok((await driver.getContent('f'))?.equals(content))
  t.equal((await driver.getContent('small'))?.toString(), 'hello')
})

t.test('keys live under the prefix; the reserved segment folder is refused as a path', async (t) => {
  const { driver } = await recordingDriver({ prefix: 'deep/er' })
  await driver.putContent('a/b', 'x')
  const root = await S3Driver.create(s3.driverOptions(''))
  t.same(await root.list('deep/er'), ['a'])
  t.same(await driver.list(''), ['a'])
  await t.rejects(driver.putContent('a/.ferry-append/b', 'x'), { message: /invalid storage path/ })
})

t.test('an append to a plain file keeps its bytes as the first segment', async (t) => {
  const { driver } = await recordingDriver()
  await driver.putContent('p', 'abc')
  const writer = await driver.writer('p', { append: true })
  t.equal(writer.size, 3)
  await write(writer.stream, 'def')
  await writer.commit()
  t.equal((await driver.getContent('p'))?.toString(), 'abcdef')
  t.match(await driver.stat('p'), { size: 6 })
})

t.test('streams a 128 MiB file up and down without buffering it', async (t) => {
  const { driver } = await recordingDriver()
  const source = new PseudoRandomSource('rss')
  const expected = createHash('sha256')
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }
  const writer = await driver.writer('big')
  await pipeline(source.stream(128 * MiB, expected).on('data', sample), writer.stream)
  await writer.commit()
  const hash = createHash('sha256')
  for await (const piece of await driver.read('big')) {
    sample()
    hash.update(piece as Buffer)
  }
  t.equal(hash.digest('hex'), expected.digest('hex'), 'bytes survive the round trip')
  // s3rver runs in this process too, so this bounds the driver and the server together.
  t.comment(`RSS growth while streaming 128 MiB through S3: ${((peak - baseline) / MiB).toFixed(1)} MiB`)
})

t.test('a folder of more than a thousand keys lists and deletes on every page', async (t) => {
  const prefix = freshPrefix()
  const { driver, sent } = await recordingDriver({ prefix })
  const names = Array.from({ length: 1003 }, (_, i) => `k${String(i).padStart(4, '0')}`)
  const folder = (paths: string[]) => paths.map((path) => `${prefix}/many/${path}`)
  await s3.seed(folder([...names, 'm/a', 'm/b', 'm/c/d']))
  sent.length = 0
  t.same(await driver.list('many'), [...names, 'm'], 'every key and the folder, from two pages')
  t.same(
    sent.filter((name) => name === 'ListObjectsV2'),
    ['ListObjectsV2', 'ListObjectsV2'],
  )
  await driver.delete('many')
  t.same(await driver.list('many'), [])
  t.equal(await driver.stat('many'), undefined, 'nothing left')
})
