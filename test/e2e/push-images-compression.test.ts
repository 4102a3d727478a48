// `ferry push images --layer-compression gzip|zstd`: a legacy docker save (skopeo docker-archive,
// uncompressed layers) pushed into a real Ferry twice, into two repositories, gives the same
// digests both times (and the same from the save as a folder, and in a dry run); the manifest
// names the compressed layers while the config keeps the plain tars' diff IDs; skopeo pulls the
// image back and every layer decompresses to its diff ID.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { blobPath, buildImage, gcLayout, initLayout, readBlob, sha256, tagDescriptor, type ImageManifest } from '../helpers/oci-layout.js'
import { startTestServer } from '../helpers/server.js'
import { missingTools, run } from '../helpers/tools.js'

const KiB = 1024
const source = 'gcr.io/anthos-baremetal-release/legacy:1.0'

interface Pushed {
  exit: number
  stderr: string
  summary: { bytesPushed: number; unchanged: number; plan?: Array<{ digest: string }> } | undefined
}

async function pushImages(args: string[]): Promise<Pushed> {
  const fake = fakeIo()
  await runCli(['node', 'ferry', 'push', 'images', '--need-credential=false', '--json', ...args], fake.io)
  const events = fake
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { exit: fake.exits[0] ?? -1, stderr: fake.stderr(), summary: events.find((e) => e.type === 'summary') as Pushed['summary'] }
}

const missing = missingTools('skopeo', 'umoci', 'zstd', 'tar')
if (missing.length > 0) {
  t.plan(0, `layer compression e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-layer-compression-'))
  const server = await startTestServer()
  t.teardown(async () => {
    await server.close()
    await rm(work, { recursive: true, force: true })
  })
  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'img', { layerSizes: [64 * KiB, 8 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const original = JSON.parse((await readBlob(layout, (await tagDescriptor(layout, 'img')).digest)).toString('utf8')) as ImageManifest
  const configBytes = await readBlob(layout, original.config.digest)
  const diffIds = (JSON.parse(configBytes.toString('utf8')) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids
  const saved = join(work, 'legacy.tar')
  await run('skopeo', ['--insecure-policy', 'copy', `oci:${layout}:img`, `docker-archive:${saved}:${source}`], { timeoutMs: 120_000 })
  const folder = join(work, 'legacy-folder')
  await mkdir(folder)
  await run('tar', ['-xf', saved, '-C', folder])

  const cases = [
    {
      kind: 'gzip',
      manifestType: 'application/vnd.docker.distribution.manifest.v2+json',
      layerType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      inflate: (bytes: Buffer): Buffer => gunzipSync(bytes),
    },
    {
      kind: 'zstd',
      manifestType: 'application/vnd.oci.image.manifest.v1+json',
      layerType: 'application/vnd.oci.image.layer.v1.tar+zstd',
      inflate: async (bytes: Buffer, file: string): Promise<Buffer> => {
        const out = `${file}.plain`
        await run('zstd', ['-q', '-d', '-f', file, '-o', out])
        return readFile(out)
      },
    },
  ] as const

  for (const c of cases) {
    t.test(`--layer-compression ${c.kind}: the same digests every time; skopeo pulls sane layers`, async (t) => {
      const push = async (namespace: string, from = saved, ...extra: string[]): Promise<string> => {
        const map = join(work, `${namespace}.json`)
        const pushed = await pushImages([
          '--source',
          from,
          '--private-registry',
          `http://${server.host}/${namespace}`,
          '--layer-compression',
          c.kind,
          '--digest-map',
          map,
          ...extra,
        ])
        t.equal(pushed.exit, 0, pushed.stderr)
        return (JSON.parse(await readFile(map, 'utf8')) as Record<string, { digest: string }>)[source]!.digest
      }
      const first = await push(`${c.kind}-a`)
      t.equal(await push(`${c.kind}-b`), first, 'a second push, into another repository, gives the same digest')
      t.equal(await push(`${c.kind}-folder`, folder), first, 'and so does the save as a folder')
      const dry = await pushImages([
        '--source',
        saved,
        '--private-registry',
        `http://${server.host}/dry`,
        '--layer-compression',
        c.kind,
        '--dry-run',
      ])
      t.equal(dry.summary?.plan?.[0]?.digest, first, 'a dry run plans the same digest')
      const again = await pushImages([
        '--source',
        saved,
        '--private-registry',
        `http://${server.host}/${c.kind}-a`,
        '--layer-compression',
        c.kind,
        '--digest-map',
        join(work, `${c.kind}-a.json`),
      ])
      t.equal(again.summary?.unchanged, 1, 'a rerun finds the image as it is')
      t.equal(again.summary?.bytesPushed, 0, 'and uploads nothing')

      const ref = `docker://${server.host}/${c.kind}-a/anthos-baremetal-release/legacy:1.0`
      const raw = Buffer.from((await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ref])).stdout, 'utf8')
      t.equal(sha256(raw), first, 'the digest map holds the pushed digest')
      const manifest = JSON.parse(raw.toString('utf8')) as {
        mediaType: string
        config: { digest: string }
        layers: Array<{ mediaType: string; digest: string; size: number }>
      }
      t.equal(manifest.mediaType, c.manifestType)
      t.same(
        manifest.layers.map((l) => l.mediaType),
        diffIds.map(() => c.layerType),
        'compressed layer media types',
      )
      t.equal(manifest.config.digest, original.config.digest, 'the config is unchanged: its diff IDs name the plain tars')
      t.notOk(
        manifest.layers.some((l) => diffIds.includes(l.digest)),
        'the layers are not the plain tars',
      )
      const inspected = JSON.parse((await run('skopeo', ['inspect', '--tls-verify=false', ref])).stdout) as { Layers: string[] }
      t.same(
        inspected.Layers,
        manifest.layers.map((l) => l.digest),
        'skopeo inspect lists the compressed layers',
      )
      const pulled = join(work, `pulled-${c.kind}`)
      await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', ref, `oci:${pulled}:back`], { timeoutMs: 120_000 })
      const back = JSON.parse((await readBlob(pulled, (await tagDescriptor(pulled, 'back')).digest)).toString('utf8')) as ImageManifest
      for (const [i, layer] of back.layers.entries()) {
        const file = blobPath(pulled, layer.digest)
        const bytes = await readFile(file)
        t.equal(sha256(bytes), layer.digest, `layer ${i} pulled intact`)
        if (c.kind === 'gzip') t.equal(bytes.readUInt32LE(4), 0, `layer ${i}: no time in the gzip header`)
        t.equal(sha256(await c.inflate(bytes, file)), diffIds[i], `layer ${i} decompresses to its diff ID`)
      }
    })
  }

  t.test('without the flag the layers go as they are; an unknown kind is refused', async (t) => {
    const map = join(work, 'plain.json')
    const pushed = await pushImages(['--source', saved, '--private-registry', `http://${server.host}/plain`, '--digest-map', map])
    t.equal(pushed.exit, 0, pushed.stderr)
    const digest = (JSON.parse(await readFile(map, 'utf8')) as Record<string, { digest: string }>)[source]!.digest
    const raw = (
      await run('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${server.host}/plain/anthos-baremetal-release/legacy@${digest}`,
      ])
    ).stdout
    t.same(
      (JSON.parse(raw) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest),
      diffIds,
    )
    const refused = await pushImages(['--source', saved, '--private-registry', `http://${server.host}/plain`, '--layer-compression', 'xz'])
    t.equal(refused.exit, 1)
    t.match(refused.stderr, /expected none, gzip, zstd/)
  })
}
