// decompressFile: a bundle file handed to xz or zstd as its stdin (its bytes never pass through
// Node on the way in); the decompressed bytes are the content, the progress is the program's
// position in the file, a corrupt file fails naming it, and the descriptor is closed after.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { decompressFile } from '../../src/bundle/decompress.js'
import { eventually } from '../helpers/eventually.js'

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

const openFds = async (): Promise<number> => (await readdir('/proc/self/fd')).length

t.test('xz and zstd files decompress from the file itself, with progress, closing the descriptor', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-decompress-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // Text compresses, so the file is much smaller than what it decompresses to.
  const content = Buffer.concat([randomBytes(256 * 1024), Buffer.from('layer of a real image\n'.repeat(200_000))])
  const plain = join(dir, 'plain')
  await writeFile(plain, content)
  const before = await openFds()
  for (const [kind, args] of [
    ['xz', ['-T0', '-0', '-k', '-c', plain]],
    ['zstd', ['-q', '-c', plain]],
  ] as const) {
    const file = join(dir, `bundle.${kind}`)
    await writeFile(file, execFileSync(kind, args, { maxBuffer: 64 * 1024 * 1024 }))
    const size = (await stat(file)).size
    const positions: number[] = []
    const out = await collect(decompressFile(kind, file, file, (bytes) => positions.push(bytes)))
    t.ok(out.equals(content), `${kind}: the decompressed bytes are the content`)
    t.ok(
      positions.every((p, i) => p <= size && (i === 0 || p >= positions[i - 1]!)),
      `${kind}: progress never passes the file's size nor goes back`,
    )
  }
  await eventually(async () => (await openFds()) <= before, { message: 'the descriptors were closed' })
})

t.test('a truncated file fails naming it; a missing one too', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-decompress-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'cut.tar.xz')
  await writeFile(file, execFileSync('xz', ['-0', '-c'], { input: randomBytes(512 * 1024) }))
  await truncate(file, 4096)
  await t.rejects(collect(decompressFile('xz', file, file)), { message: new RegExp(`${file}: xz data is corrupt or truncated`) })
  const missing = join(dir, 'missing.tar.zst')
  await t.rejects(collect(decompressFile('zstd', missing, missing)), { message: new RegExp(`${missing}: .*ENOENT`) })
})
