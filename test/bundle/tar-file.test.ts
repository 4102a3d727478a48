// Reading a plain tar file by position (tar-file.ts) gives the same entries as streaming it
// through tar-stream, for what GNU tar writes in its gnu and pax formats: long names, symlinks,
// hard links, empty files; and a truncated or corrupt archive is refused naming the file.
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile, link } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { tarEntries, type Entry } from '../../src/bundle/entries.js'
import { tarFileEntries } from '../../src/bundle/tar-file.js'
import { missingTools, run } from '../helpers/tools.js'

async function listed(entries: AsyncIterable<Entry>): Promise<Array<[string, string, number, string | undefined, string]>> {
  const out: Array<[string, string, number, string | undefined, string]> = []
  for await (const entry of entries) {
    const chunks: Buffer[] = []
    if (entry.kind === 'file') for await (const chunk of entry.read()) chunks.push(chunk)
    out.push([entry.path, entry.kind, entry.size, entry.linkname, Buffer.concat(chunks).toString('utf8')])
  }
  return out
}

if (missingTools('tar').length > 0) {
  t.plan(0, 'tar not on PATH')
} else {
  const work = await mkdtemp(join(tmpdir(), 'ferry-tar-file-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const tree = join(work, 'tree')
  const deep = join(tree, 'a'.repeat(60), 'b'.repeat(60))
  await mkdir(deep, { recursive: true })
  await writeFile(join(deep, `${'c'.repeat(90)}.json`), '{"long":"name"}')
  await writeFile(join(tree, 'empty'), '')
  await writeFile(join(tree, 'plain.txt'), 'x'.repeat(1500))
  await symlink('plain.txt', join(tree, 'soft'))
  await link(join(tree, 'plain.txt'), join(tree, 'hard'))

  for (const format of ['gnu', 'pax', 'ustar']) {
    t.test(`GNU tar --format=${format}: the same entries as tar-stream reads`, async (t) => {
      const tar = join(work, `${format}.tar`)
      // ustar cannot hold the long path: it is left out there.
      const names = format === 'ustar' ? ['empty', 'plain.txt', 'soft', 'hard'] : ['.']
      await run('tar', [`--format=${format}`, '-cf', tar, '-C', tree, ...names])
      const byPosition = await listed(tarFileEntries(tar))
      const streamed = await listed(tarEntries(createReadStream(tar)))
      t.same(byPosition, streamed)
      t.ok(byPosition.length >= 4)
      if (format !== 'ustar') t.ok(byPosition.some(([path, , , , body]) => path.endsWith('.json') && body === '{"long":"name"}'))
    })
  }

  t.test('a truncated or corrupt tar file is refused, naming it', async (t) => {
    const tar = join(work, 'whole.tar')
    await run('tar', ['-cf', tar, '-C', tree, 'plain.txt', 'empty'])
    const bytes = await readFile(tar)
    const cut = join(work, 'cut.tar')
    await writeFile(cut, bytes.subarray(0, 1024))
    await t.rejects(listed(tarFileEntries(cut)), { message: new RegExp(`^${cut}: the tar archive is truncated`) })
    const corrupt = join(work, 'corrupt.tar')
    const damaged = Buffer.from(bytes)
    damaged[2048 + 10] = 0x41
    await writeFile(corrupt, damaged)
    await t.rejects(listed(tarFileEntries(corrupt)), { message: new RegExp(`^${corrupt}: corrupt tar header at byte 2048`) })
  })
}
