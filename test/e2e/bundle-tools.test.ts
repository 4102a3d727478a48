// `ferry bundle create|ls`, `ferry pull` and `ferry extract` end to end: images built offline
// (umoci, a hand-written two-platform index, an artifact with titled layers) pushed into CNCF
// distribution and into a real Ferry process (both with htpasswd accounts), pulled back by the
// real CLI, the bundles read by skopeo (oci-archive: and docker-archive:) and pushed again with
// `ferry push images`, keeping every digest.
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import {
  buildImage,
  gcLayout,
  imagePlatform,
  initLayout,
  readBlob,
  sha256,
  tagDescriptor,
  writeIndex,
  type Descriptor,
  type ImageManifest,
} from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const MiB = 1024 * 1024
const user = 'pusher'
const password = 'pusher-pw'

async function ferry(...args: string[]): Promise<{ exit: number; stdout: string; stderr: string }> {
  const fake = fakeIo()
  await runCli(['node', 'ferry', ...args], fake.io)
  return { exit: fake.exits[0] ?? -1, stdout: fake.stdout(), stderr: fake.stderr() }
}

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

const missing = [...missingTools('skopeo', 'umoci', 'zstd'), ...(distributionUnavailable() ? ['docker-registry'] : [])]
if (missing.length > 0) t.plan(0, `bundle tools e2e skipped: ${missing.join(', ')} not on PATH`)
else await main()

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-btools-'))
  let server: FerryProcess | undefined
  let distribution: Distribution | undefined
  t.teardown(async () => {
    if (server && !t.passing()) t.comment(`ferry output (tail):\n${server.logs().slice(-4000)}`)
    await server?.stop()
    await distribution?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const layout = join(work, 'layout')
  await initLayout(layout)
  // Big enough that the bundle is many times the head `bundle ls` may read.
  await buildImage(layout, 'amd64', { layerSizes: [2 * MiB, 16 * 1024], architecture: 'amd64' }, join(work, 'scratch'))
  await buildImage(layout, 'arm64', { layerSizes: [MiB], architecture: 'arm64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const withPlatform = async (tag: string): Promise<Descriptor> => {
    const descriptor = await tagDescriptor(layout, tag)
    const manifest = JSON.parse((await readBlob(layout, descriptor.digest)).toString('utf8')) as ImageManifest
    return { ...descriptor, platform: await imagePlatform(layout, manifest) }
  }
  const [amd64, arm64] = [await withPlatform('amd64'), await withPlatform('arm64')]
  const index = await writeIndex(layout, 'multi', [amd64!, arm64!])
  const indexBytes = await readBlob(layout, index.digest)

  distribution = await startDistribution({ auth: 'htpasswd', users: { [user]: password } })
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { [user]: password })
  server = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', join(work, 'data'), '--htpasswd', htpasswd])
  const multi = `${distribution.host}/x/multi:2.0`
  const single = `${server.host}/x/single:1.0`
  const seed = (from: string, to: string, all: boolean) =>
    skopeo(
      'copy',
      ...(all ? ['--all'] : []),
      '--preserve-digests',
      '--dest-tls-verify=false',
      '--dest-creds',
      `${user}:${password}`,
      from,
      `docker://${to}`,
    )
  await seed(`oci:${layout}:multi`, multi, true)
  await seed(`oci:${layout}:amd64`, single, false)
  const access = ['--plain-http', '--username', user, '--password', password]

  const bundle = join(work, 'images.tar')
  await t.test('bundle create pulls from two registries; a second run gives the same bytes; ls reads its head', async (t) => {
    const created = await ferry('bundle', 'create', ...access, '--output', bundle, multi, single)
    t.equal(created.exit, 0, created.stderr)
    const list = join(work, 'images.txt')
    await writeFile(list, `# the same images, from a file\n${multi}\n\n${single}\n`)
    // The same images through a Docker config.json, looked up per registry host.
    const auth = { auth: Buffer.from(`${user}:${password}`).toString('base64') }
    const dockerConfig = join(work, 'config.json')
    await writeFile(dockerConfig, JSON.stringify({ auths: { [distribution!.host]: auth, [server!.host]: auth } }))
    const viaConfig = ['--plain-http', '--docker-config', dockerConfig]
    const again = await ferry('bundle', 'create', ...viaConfig, '--output', join(work, 'again.tar'), '--images', list)
    t.equal(again.exit, 0, again.stderr)
    t.ok((await readFile(bundle)).equals(await readFile(join(work, 'again.tar'))), 'byte-identical bundles')
    const { stdout: entries } = await run('tar', ['-tf', bundle])
    t.equal(entries.split('\n')[0], 'ferry-bundle.json', 'the table of contents is the first entry')

    const zst = join(work, 'images.tar.zst')
    t.equal((await ferry('bundle', 'create', ...access, '--output', zst, multi, single)).exit, 0)
    const zstAgain = join(work, 'again.tar.zst')
    t.equal((await ferry('bundle', 'create', ...access, '--compression', 'zstd', '--output', zstAgain, multi, single)).exit, 0)
    t.ok((await readFile(zst)).equals(await readFile(zstAgain)), 'zstd bundles are byte-identical too')
    const { stdout: unpacked } = await run('sh', ['-c', `zstd -dc "${zst}" | cmp - "${bundle}" && echo same`])
    t.equal(unpacked.trim(), 'same', 'and hold the same tar')

    const gz = join(work, 'images.tgz')
    t.equal((await ferry('bundle', 'create', ...access, '--output', gz, multi, single)).exit, 0)
    const { stdout: gunzipped } = await run('sh', ['-c', `gzip -dc "${gz}" | cmp - "${bundle}" && echo same`])
    t.equal(gunzipped.trim(), 'same', 'gzip by the name (.tgz)')

    for (const file of [bundle, zst, gz]) {
      const ls = await ferry('bundle', 'ls', '--json', file)
      t.equal(ls.exit, 0, ls.stderr)
      const listing = JSON.parse(ls.stdout) as {
        from: string
        bytesRead: number
        images: Array<{ reference: string; digest: string; children?: Array<{ platform: string; digest: string }> }>
      }
      t.equal(listing.from, 'toc', `${file}: answered from the table of contents`)
      const size = (await stat(file)).size
      t.ok(size > 3 * MiB && listing.bytesRead <= 320 * 1024, `${file}: read ${listing.bytesRead} of ${size} bytes`)
      t.same(
        listing.images.map((i) => [i.reference, i.digest, i.children?.map((c) => [c.platform, c.digest])]),
        [
          [
            multi,
            index.digest,
            [
              ['linux/amd64', amd64!.digest],
              ['linux/arm64', arm64!.digest],
            ],
          ],
          [single, amd64!.digest, undefined],
        ],
      )
    }
    const tree = await ferry('bundle', 'ls', bundle)
    t.match(tree.stdout, `${multi}  ${index.digest}  index of 2`)
    t.match(tree.stdout, `├── linux/amd64  ${amd64!.digest}`)
    t.match(tree.stdout, `└── linux/arm64  ${arm64!.digest}`)
  })

  await t.test('an image that is not there: exit 1 naming it, no bundle and no temp files left', async (t) => {
    const out = join(work, 'failed', 'none.tar')
    await mkdir(join(work, 'failed'))
    const failed = await ferry('bundle', 'create', ...access, '--output', out, single, `${distribution!.host}/x/absent:1.0`)
    t.equal(failed.exit, 1)
    t.match(failed.stderr, `${distribution!.host}/x/absent:1.0: the registry answered 404 (no such image)`)
    t.same(await readdir(join(work, 'failed')), [], 'nothing written')
  })

  await t.test('skopeo reads the bundle as oci-archive: and docker-archive:', async (t) => {
    const raw = (await skopeo('inspect', '--raw', `oci-archive:${bundle}:${multi}`)).stdout
    t.ok(Buffer.from(raw).equals(indexBytes), 'oci-archive: the index byte-exact')
    const copied = join(work, 'from-archive')
    await skopeo('copy', '--all', '--preserve-digests', `oci-archive:${bundle}:${single}`, `oci:${copied}:x`)
    t.equal((await tagDescriptor(copied, 'x')).digest, amd64!.digest, 'skopeo copies it out, every blob checked')
    const inspected = JSON.parse((await skopeo('inspect', '--config', `docker-archive:${bundle}:${single}`)).stdout) as {
      architecture: string
    }
    t.equal(inspected.architecture, 'amd64', 'docker-archive: manifest.json names the image and its config')
    const amd64Manifest = JSON.parse((await readBlob(layout, amd64!.digest)).toString('utf8')) as ImageManifest
    const layers = JSON.parse((await skopeo('inspect', `docker-archive:${bundle}:${multi}`)).stdout) as { Layers: string[] }
    t.equal(layers.Layers.length, amd64Manifest.layers.length, 'an index goes into manifest.json as this platform')
  })

  await t.test('ls of another format reads it whole; push images round-trips every digest', async (t) => {
    const archive = join(work, 'skopeo.tar')
    await skopeo('copy', '--all', '--preserve-digests', `oci:${layout}:multi`, `oci-archive:${archive}:${multi}`)
    const ls = await ferry('bundle', 'ls', '--json', archive)
    const listing = JSON.parse(ls.stdout) as { from: string; images: Array<{ reference: string; digest: string }> }
    t.equal(listing.from, 'scan')
    t.same(
      listing.images.map((i) => [i.reference, i.digest]),
      [[multi, index.digest]],
    )

    const map = join(work, 'digest-map.json')
    const pushed = await ferry(
      'push',
      'images',
      '--source',
      bundle,
      '--private-registry',
      `http://${server!.host}/air`,
      '--username',
      user,
      '--password',
      password,
      '--digest-map',
      map,
    )
    t.equal(pushed.exit, 0, pushed.stderr)
    const digests = JSON.parse(await readFile(map, 'utf8')) as Record<string, { destination: string; digest: string }>
    t.equal(digests[multi]?.digest, index.digest, 'the index keeps its digest')
    t.equal(digests[single]?.digest, amd64!.digest, 'and the image its own')
    const back = (
      await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', `${user}:${password}`, `docker://${server!.host}/air/x/multi:2.0`)
    ).stdout
    t.ok(Buffer.from(back).equals(indexBytes), 'the pushed index is byte-exact')
  })

  await t.test('bundle create --platform keeps one platform in a rewritten index', async (t) => {
    const out = join(work, 'arm.tar')
    const created = await ferry('bundle', 'create', ...access, '--platform', 'linux/arm64', '--output', out, multi)
    t.equal(created.exit, 0, created.stderr)
    const listing = JSON.parse((await ferry('bundle', 'ls', '--json', out)).stdout) as {
      images: Array<{ digest: string; children: Array<{ platform: string }> }>
    }
    t.same(
      listing.images[0]?.children.map((c) => c.platform),
      ['linux/arm64'],
    )
    const raw = (await skopeo('inspect', '--raw', `oci-archive:${out}:${multi}`)).stdout
    t.equal(sha256(raw), listing.images[0]?.digest, 'the rewritten index is what the bundle holds')
    t.not(listing.images[0]?.digest, index.digest)
  })

  await t.test('pull to an OCI layout folder and to a docker-archive tar', async (t) => {
    const folder = join(work, 'pulled')
    const pulled = await ferry('pull', ...access, multi, folder)
    t.equal(pulled.exit, 0, pulled.stderr)
    t.ok(Buffer.from((await skopeo('inspect', '--raw', `oci:${folder}:${multi}`)).stdout).equals(indexBytes), 'the whole index')
    const added = await ferry('pull', ...access, single, folder)
    t.equal(added.exit, 0, added.stderr)
    t.equal((await tagDescriptor(folder, single)).digest, amd64!.digest, 'a second image joins the layout')
    t.equal((await tagDescriptor(folder, multi)).digest, index.digest, 'beside the first')
    const one = await ferry('pull', ...access, '--platform', 'linux/arm64', '--single-manifest', multi, join(work, 'pulled-arm'))
    t.equal(one.exit, 0, one.stderr)
    t.equal((await tagDescriptor(join(work, 'pulled-arm'), multi)).digest, arm64!.digest, '--single-manifest: the platform manifest')
    const tar = join(work, 'pulled.tar')
    const archived = await ferry('pull', ...access, '--platform', 'linux/arm64', multi, tar)
    t.equal(archived.exit, 0, archived.stderr)
    const config = JSON.parse((await skopeo('inspect', '--config', `docker-archive:${tar}`)).stdout) as { architecture: string }
    t.equal(config.architecture, 'arm64', 'a docker archive of the chosen platform')
    const copied = join(work, 'from-docker-archive')
    await skopeo('copy', `docker-archive:${tar}`, `oci:${copied}:x`)
    t.pass('skopeo copies it out of the docker archive')
  })

  await t.test('extract from a registry and from the pulled layout', async (t) => {
    const fromRegistry = join(work, 'rootfs-arm')
    const extracted = await ferry('extract', ...access, '--platform', 'linux/arm64', multi, fromRegistry)
    t.equal(extracted.exit, 0, extracted.stderr)
    t.equal((await stat(join(fromRegistry, 'data/arm64/0/random-0.bin'))).size, MiB)
    const fromLayout = join(work, 'rootfs-amd')
    const local = await ferry('extract', '--platform', 'linux/amd64', '--ref', multi, join(work, 'pulled'), fromLayout)
    t.equal(local.exit, 0, local.stderr)
    t.equal((await stat(join(fromLayout, 'data/amd64/0/random-0.bin'))).size, 2 * MiB)
    t.equal((await stat(join(fromLayout, 'data/amd64/1/random-1.bin'))).size, 16 * 1024)
  })

  await t.test('an artifact with titled layers: listed, bundled and extracted as files', async (t) => {
    const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` }
    const base = `${distribution!.url}/v2/x/chart`
    const upload = async (bytes: Buffer, mediaType: string, title?: string): Promise<Descriptor> => {
      const digest = sha256(bytes)
      const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers: auth })
      const location = new URL(start.headers.get('location')!, distribution!.url)
      location.searchParams.set('digest', digest)
      const put = await fetch(location, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes })
      t.equal(put.status, 201)
      return { mediaType, digest, size: bytes.length, ...(title ? { annotations: { 'org.opencontainers.image.title': title } } : {}) }
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.chart',
      config: await upload(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json'),
      layers: [
        await upload(Buffer.from('name: app\n'), 'application/yaml', 'Chart.yaml'),
        await upload(Buffer.from('replicas: 1\n'), 'application/yaml', 'values.yaml'),
      ],
    }
    const put = await fetch(`${base}/manifests/1.0`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': manifest.mediaType },
      body: JSON.stringify(manifest),
    })
    t.equal(put.status, 201)
    const ref = `${distribution!.host}/x/chart:1.0`
    const out = join(work, 'chart')
    const extracted = await ferry('extract', ...access, ref, out)
    t.equal(extracted.exit, 0, extracted.stderr)
    t.equal(await readFile(join(out, 'Chart.yaml'), 'utf8'), 'name: app\n')
    t.equal(await readFile(join(out, 'values.yaml'), 'utf8'), 'replicas: 1\n')
    const chartBundle = join(work, 'chart.tar')
    t.equal((await ferry('bundle', 'create', ...access, '--output', chartBundle, ref)).exit, 0)
    t.match((await ferry('bundle', 'ls', chartBundle)).stdout, `${ref}  sha256:`)
    t.match((await ferry('bundle', 'ls', chartBundle)).stdout, 'application/vnd.example.chart')
  })

  await t.test('https with --cacert; without it, pull stops naming the certificate', { skip: pkiUnavailable() ?? false }, async (t) => {
    const ca = await makeCa(join(work, 'ca'))
    const cert = await issueServerCert(ca, { cn: '127.0.0.1' })
    const secure = await startDistribution({ tls: { certificate: cert.fullChainPath, key: cert.keyPath } })
    t.teardown(() => secure.stop())
    const ref = `${secure.host}/x/single:1.0`
    await skopeo('copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:amd64`, `docker://${ref}`)
    const refused = await ferry('pull', ref, join(work, 'tls-refused'))
    t.equal(refused.exit, 1)
    t.match(refused.stderr, /certificate|TLS/i)
    const pulled = await ferry('pull', '--cacert', ca.certPath, ref, join(work, 'tls-pulled'))
    t.equal(pulled.exit, 0, pulled.stderr)
    t.equal((await tagDescriptor(join(work, 'tls-pulled'), ref)).digest, amd64!.digest)
  })
}
