// Split Zarf packages (`zarf-package-*.tar.zst.part000`, `.part001`, … as `zarf package create
// --max-package-size` writes them: part000 the JSON {sha256Sum, bytes, count}, then the bytes):
// `ferry push images --source` at the first part, at another part or at the folder reads the
// parts in order as one stream and pushes the package's image byte-exact into a real server; a
// missing part, parts that do not add up, or bytes that do not hash to sha256Sum are refused
// naming the file, with nothing tagged.
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BundlePush } from '../../src/bundle/importer.js'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { startAuthServer } from '../helpers/auth-server.js'
import { buildImage, gcLayout, initLayout, readBlob, readIndexJson, tagDescriptor } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const KiB = 1024
const imageName = 'ghcr.io/stefanprodan/podinfo:6.4.0'
const basic = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`

const missing = missingTools('umoci', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `split Zarf packages skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

interface Split {
  dir: string
  first: string
  parts: string[]
  digest: string
  manifest: Buffer
}

/** A Zarf-shaped package (zarf.yaml, checksums.txt, images/ named by base.name), zstd, cut into `count` parts. */
async function splitPackage(work: string, name: string, count: number): Promise<Split> {
  const root = join(work, `${name}-root`)
  const images = join(root, 'images')
  await initLayout(images)
  await buildImage(images, 'app', { layerSizes: [200 * KiB, 16 * KiB], architecture: 'amd64' }, join(work, `${name}-scratch`))
  await gcLayout(images)
  const descriptor = await tagDescriptor(images, 'app')
  const index = await readIndexJson(images)
  index.manifests = [{ ...descriptor, annotations: { 'org.opencontainers.image.base.name': imageName } }]
  await writeFile(join(images, 'index.json'), JSON.stringify(index))
  await writeFile(
    join(root, 'zarf.yaml'),
    `kind: ZarfPackageConfig\nmetadata:\n  name: ${name}\ncomponents:\n  - name: main\n    images:\n      - ${imageName}\n`,
  )
  await run('sh', ['-c', `cd "${root}" && find . -type f ! -name checksums.txt | sort | xargs sha256sum > checksums.txt`])
  const dir = join(work, name)
  await mkdir(dir, { recursive: true })
  const file = join(dir, `zarf-package-${name}-amd64-1.0.0.tar.zst`)
  await run('sh', ['-c', `tar -cf - -C "${root}" . | zstd -q -c > "${file}"`])
  const bytes = await readFile(file)
  const size = Math.ceil(bytes.length / count)
  const parts: string[] = []
  for (let i = 0; i < count; i++) {
    const part = `${file}.part${String(i + 1).padStart(3, '0')}`
    await writeFile(part, bytes.subarray(i * size, (i + 1) * size))
    parts.push(part)
  }
  const first = `${file}.part000`
  await writeFile(first, JSON.stringify({ sha256Sum: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length, count }))
  await rm(file)
  return { dir, first, parts, digest: descriptor.digest, manifest: await readBlob(images, descriptor.digest) }
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-zarf-split-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const server = await startAuthServer(t, {
    users: { admin: 'admin-pw' },
    auth: { roles: [{ subjects: ['admin'], namespaces: ['**'], role: 'admin' }] },
  })
  const push = async (source: string, namespace: string): Promise<{ exit: number; stderr: string }> => {
    const fake = fakeIo()
    const args = ['--source', source, '--private-registry', `http://${server.host}/${namespace}`, '--digest-map', join(work, 'map.json')]
    args.push('--username', 'admin', '--password', 'admin-pw')
    await runCli(['node', 'ferry', 'push', 'images', ...args], fake.io)
    return { exit: fake.exits[0] ?? -1, stderr: fake.stderr() }
  }
  const manifestOf = async (namespace: string): Promise<Buffer | undefined> => {
    const response = await fetch(`${server.url}/v2/${namespace}/stefanprodan/podinfo/manifests/6.4.0`, {
      headers: { authorization: basic, accept: 'application/vnd.oci.image.manifest.v1+json' },
    })
    return response.status === 200 ? Buffer.from(await response.arrayBuffer()) : undefined
  }
  const plan = (source: string) => new BundlePush({ source, namespace: 'ns', concurrency: 4, keepGoing: true }).run()

  const split = await splitPackage(work, 'podinfo', 3)

  await t.test('--source at part000: the parts are read in order as one package and its image lands byte-exact', async (t) => {
    const pushed = await push(split.first, 'zarf')
    t.equal(pushed.exit, 0, pushed.stderr)
    t.ok((await manifestOf('zarf'))?.equals(split.manifest), 'the manifest under its name, with its bytes')
  })

  await t.test('at another part, or at the folder, the same package is found (dry run)', async (t) => {
    for (const source of [split.parts[1]!, split.dir]) {
      const report = await plan(source)
      t.equal(report.fatal, undefined, source)
      t.same(
        report.images.map((i) => [i.destination, i.digest, i.error]),
        [['ns/stefanprodan/podinfo:6.4.0', split.digest, undefined]],
        source,
      )
    }
  })

  await t.test('a missing part: a clear error naming it, exit 1, nothing tagged', async (t) => {
    const other = await splitPackage(work, 'gap', 3)
    await rename(other.parts[1]!, `${other.parts[1]!}.away`)
    const pushed = await push(other.first, 'zarf-gap')
    t.equal(pushed.exit, 1)
    t.match(pushed.stderr, `${other.parts[1]!} is missing`)
    t.match(pushed.stderr, 'split into 3 parts')
    t.equal(await manifestOf('zarf-gap'), undefined)
    const folder = await plan(other.dir)
    t.same(
      folder.images.map((i) => [i.status, /is missing/.test(i.error ?? '')]),
      [['failed', true]],
      'from the folder too: the package fails, naming the part',
    )
  })

  await t.test('bytes that do not hash to sha256Sum, or do not add up to its size: refused, nothing tagged', async (t) => {
    const wrong = await splitPackage(work, 'altered', 2)
    const metadata = JSON.parse(await readFile(wrong.first, 'utf8')) as { sha256Sum: string; bytes: number; count: number }
    await writeFile(wrong.first, JSON.stringify({ ...metadata, sha256Sum: '0'.repeat(64) }))
    const pushed = await push(wrong.first, 'zarf-altered')
    t.equal(pushed.exit, 1)
    t.match(pushed.stderr, `not to the sha256Sum ${'0'.repeat(64)}`)
    t.equal(await manifestOf('zarf-altered'), undefined, 'nothing tagged')

    await writeFile(wrong.first, JSON.stringify({ ...metadata, bytes: metadata.bytes + 1 }))
    const short = await push(wrong.first, 'zarf-altered')
    t.equal(short.exit, 1)
    t.match(short.stderr, `hold ${metadata.bytes} bytes, but it says the package has ${metadata.bytes + 1}`)
  })
}
