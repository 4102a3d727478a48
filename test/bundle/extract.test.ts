// `ferry extract` on OCI layouts written here by hand, so each layer holds exactly the entries a
// case needs: whiteouts and opaque folders across layers, and hostile layers (`..`, absolute
// paths, symlinks placed to lead out, hard links out, device files, a symlink waiting where a
// file is written) that must leave everything outside the target untouched. Then an artifact
// whose layers carry titles.
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { pack } from 'tar-stream'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { sha256, type Descriptor } from '../helpers/oci-layout.js'

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device'; body?: string; linkname?: string }

/** A gzipped tar of `entries`, in order; `complete: false` leaves off the end-of-archive blocks, as umoci does. */
async function layerTar(entries: Entry[]): Promise<Buffer> {
  const tar = pack()
  const chunks: Buffer[] = []
  const done = (async () => {
    for await (const chunk of tar) chunks.push(chunk as Buffer)
  })()
  for (const e of entries) {
    const type = e.type ?? 'file'
    const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, ...(e.linkname ? { linkname: e.linkname } : {}) }
    await new Promise<void>((resolve, reject) =>
      tar.entry(type === 'file' ? { ...header, size: Buffer.byteLength(e.body ?? '') } : header, e.body ?? '', (err) =>
        err ? reject(err) : resolve(),
      ),
    )
  }
  tar.finalize()
  await done
  return gzipSync(Buffer.concat(chunks))
}

/** An OCI layout with one image (or artifact) of these layers. */
async function layout(
  dir: string,
  layers: Array<{ bytes: Buffer; mediaType?: string; title?: string }>,
  configType?: string,
): Promise<string> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  const blob = async (bytes: Buffer, mediaType: string, annotations?: Record<string, string>): Promise<Descriptor> => {
    const digest = sha256(bytes)
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes)
    return { mediaType, digest, size: bytes.length, ...(annotations ? { annotations } : {}) }
  }
  const config = await blob(
    Buffer.from(configType ? '{}' : JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
    configType ?? 'application/vnd.oci.image.config.v1+json',
  )
  const descriptors = []
  for (const layer of layers) {
    descriptors.push(
      await blob(
        layer.bytes,
        layer.mediaType ?? 'application/vnd.oci.image.layer.v1.tar+gzip',
        layer.title ? { 'org.opencontainers.image.title': layer.title } : undefined,
      ),
    )
  }
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: descriptors }),
  )
  const root = await blob(manifest, 'application/vnd.oci.image.manifest.v1+json')
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': 'test:1' } }] }),
  )
  return dir
}

async function extract(source: string, target: string): Promise<{ exit: number; stdout: string; stderr: string }> {
  const fake = fakeIo()
  await runCli(['node', 'ferry', 'extract', source, target], fake.io)
  return { exit: fake.exits[0] ?? -1, stdout: fake.stdout(), stderr: fake.stderr() }
}

const exists = async (path: string): Promise<boolean> => (await lstat(path).catch(() => undefined)) !== undefined

const work = await mkdtemp(join(tmpdir(), 'ferry-extract-'))
t.teardown(() => rm(work, { recursive: true, force: true }))

t.test('layers in order: whiteouts delete, an opaque folder keeps only what its own layer put in it', async (t) => {
  const dir = await layout(join(work, 'whiteouts'), [
    {
      bytes: await layerTar([
        { name: 'a/', type: 'directory' },
        { name: 'a/keep', body: 'keep' },
        { name: 'a/gone', body: 'gone' },
        { name: 'a/gone-dir/', type: 'directory' },
        { name: 'a/gone-dir/inner', body: 'x' },
        { name: 'b/', type: 'directory' },
        { name: 'b/x', body: 'x' },
        { name: 'b/y/', type: 'directory' },
        { name: 'b/y/z', body: 'z' },
        { name: 'replaced', body: 'old' },
      ]),
    },
    {
      bytes: await layerTar([
        { name: 'a/.wh.gone', body: '' },
        { name: 'a/.wh.gone-dir', body: '' },
        { name: 'b/', type: 'directory' },
        { name: 'b/.wh..wh..opq', body: '' },
        { name: 'b/new', body: 'new' },
        { name: 'replaced', body: 'new' },
      ]),
    },
  ])
  const target = join(work, 'whiteouts-out')
  const result = await extract(dir, target)
  t.equal(result.exit, 0, result.stderr)
  t.match(result.stdout, '2 layer(s)')
  t.equal(await readFile(join(target, 'a/keep'), 'utf8'), 'keep')
  t.notOk(await exists(join(target, 'a/gone')), '.wh.gone deleted the file of the lower layer')
  t.notOk(await exists(join(target, 'a/gone-dir')), 'and .wh.gone-dir the folder with its content')
  t.notOk(await exists(join(target, 'a/.wh.gone')), 'whiteouts themselves are not written')
  t.notOk(await exists(join(target, 'b/x')), 'the opaque folder lost the lower layer files')
  t.notOk(await exists(join(target, 'b/y')), 'and folders')
  t.equal(await readFile(join(target, 'b/new'), 'utf8'), 'new', 'but kept its own')
  t.equal(await readFile(join(target, 'replaced'), 'utf8'), 'new', 'an upper layer file replaces a lower one')
})

t.test('hostile entries are refused or kept inside the target; nothing outside changes', async (t) => {
  const outside = join(work, 'outside')
  await mkdir(outside, { recursive: true })
  const victim = join(outside, 'victim')
  await writeFile(victim, 'untouched')
  const dir = await layout(join(work, 'hostile'), [
    {
      bytes: await layerTar([
        { name: '../escaped', body: 'climbed' },
        { name: 'ok/../../escaped-too', body: 'climbed' },
        { name: '/absolute', body: 'rooted' },
        { name: 'to-root', type: 'symlink', linkname: '/' },
        { name: 'to-outside', type: 'symlink', linkname: outside },
        { name: 'up', type: 'symlink', linkname: '../../../..' },
        { name: 'trap', type: 'symlink', linkname: victim },
        { name: 'dev-null', type: 'character-device' },
      ]),
    },
    {
      bytes: await layerTar([
        { name: 'to-outside/victim', body: 'overwritten through a symlink' },
        { name: 'to-root/planted', body: 'through a symlink to /' },
        { name: 'up/climbed', body: 'through a relative symlink' },
        { name: 'trap', body: 'written over the link, not through it' },
        { name: 'hard', type: 'link', linkname: '../outside/victim' },
        { name: 'hard-via-link', type: 'link', linkname: 'to-outside/victim' },
      ]),
    },
  ])
  const target = join(work, 'hostile-out', 'root')
  const result = await extract(dir, target)
  t.equal(result.exit, 0, result.stderr)
  t.equal(await readFile(victim, 'utf8'), 'untouched', 'the file outside is untouched')
  t.notOk(await exists(join(work, 'hostile-out', 'escaped')), '../ refused')
  t.notOk(await exists(join(work, 'escaped-too')), 'ok/../../ refused')
  t.match(result.stderr, /skipped \.\.\/escaped: the path climbs out/)
  t.equal(await readFile(join(target, 'absolute'), 'utf8'), 'rooted', 'an absolute path lands under the target')
  t.equal(await readFile(join(target, 'planted'), 'utf8'), 'through a symlink to /', 'a symlink to / means the target root')
  t.equal(await readFile(join(target, 'climbed'), 'utf8'), 'through a relative symlink', '.. in a symlink stops at the target root')
  t.equal(
    await readFile(join(target, outside, 'victim'), 'utf8'),
    'overwritten through a symlink',
    'an absolute symlink is read inside the target',
  )
  t.notOk((await lstat(join(target, 'trap'))).isSymbolicLink(), 'a file replaces the symlink standing where it goes')
  t.equal(await readFile(join(target, 'trap'), 'utf8'), 'written over the link, not through it')
  t.equal(await readlink(join(target, 'to-outside')), outside, 'symlinks are kept as they are (never followed)')
  t.notOk(await exists(join(target, 'hard')), 'a hard link to ../ refused')
  t.equal(
    (await stat(join(target, 'hard-via-link'))).ino,
    (await stat(join(target, outside, 'victim'))).ino,
    'a hard link through a symlink links inside',
  )
  t.notOk(await exists(join(target, 'dev-null')), 'no device file')
  t.match(result.stderr, 'character-device entries are not extracted')
})

t.test('an artifact: layers with a title are written as files of that name', async (t) => {
  const dir = await layout(
    join(work, 'artifact'),
    [
      { bytes: Buffer.from('hello\n'), mediaType: 'text/plain', title: 'hello.txt' },
      { bytes: Buffer.from('# notes\n'), mediaType: 'text/markdown', title: 'docs/notes.md' },
      { bytes: Buffer.from('evil'), mediaType: 'text/plain', title: '../evil.txt' },
    ],
    'application/vnd.example.config.v1+json',
  )
  const target = join(work, 'artifact-out')
  const result = await extract(dir, target)
  t.equal(result.exit, 0, result.stderr)
  t.equal(await readFile(join(target, 'hello.txt'), 'utf8'), 'hello\n')
  t.equal(await readFile(join(target, 'docs/notes.md'), 'utf8'), '# notes\n')
  t.notOk(await exists(join(work, 'evil.txt')), 'a title climbing out is refused')
  t.match(result.stdout, '2 file(s): hello.txt, docs/notes.md')
})

t.test('a layer whose bytes do not match their digest fails the extraction, naming the file', async (t) => {
  const dir = await layout(join(work, 'corrupt'), [{ bytes: await layerTar([{ name: 'f', body: 'data' }]) }])
  const manifest = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] }
  const root = JSON.parse(await readFile(join(dir, 'blobs/sha256', manifest.manifests[0]!.digest.slice(7)), 'utf8')) as {
    layers: Descriptor[]
  }
  await writeFile(join(dir, 'blobs/sha256', root.layers[0]!.digest.slice(7)), await layerTar([{ name: 'f', body: 'tampered' }]))
  const result = await extract(dir, join(work, 'corrupt-out'))
  t.equal(result.exit, 1)
  t.match(
    result.stderr,
    /corrupt\/blobs\/sha256\/[0-9a-f]{64}: (more than the \d+ bytes|\d+ bytes hash to)/,
    'the error names the blob file',
  )
})

t.test('a folder that is not an OCI layout is named as such, not read as a reference', async (t) => {
  const folder = join(work, 'not-a-layout')
  await mkdir(folder)
  const result = await extract(folder, join(work, 'not-a-layout-out'))
  t.equal(result.exit, 1)
  t.match(result.stderr, `${folder} is a folder but not an OCI image layout`)
})
