// skopeo against Ferry running as a real process: byte-exact round trips of a multi-layer OCI
// image and of a multi-platform index, a Docker schema2 push, tag listing and deletion. Ferry runs
// with `--htpasswd` (a file written by `htpasswd -B`): skopeo pushes and deletes with credentials,
// following Ferry's Bearer challenge to its token service; pulls are anonymous (anonymous tokens),
// as `--anonymous-pull e2e/**` allows.
// Fixture images are built offline with umoci (plus a hand-written index) in a temp folder.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import {
  blobPath,
  buildImage,
  gcLayout,
  imagePlatform,
  initLayout,
  ociMediaTypes,
  readBlob,
  sha256,
  sha256File,
  tagDescriptor,
  writeIndex,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../helpers/oci-layout.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { missingTools, run } from '../helpers/tools.js'

const KiB = 1024
const MiB = 1024 * KiB

const dockerTypes = {
  manifest: 'application/vnd.docker.distribution.manifest.v2+json',
  config: 'application/vnd.docker.container.image.v1+json',
  layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const

/** What `skopeo inspect` (without --raw) prints, the fields this test reads. */
interface SkopeoInspect {
  Digest: string
  Architecture: string
  Os: string
  Layers: string[]
}

const missing = missingTools('skopeo', 'umoci', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `skopeo e2e skipped: ${missing.join(' and ')} not found on PATH (apt-get install skopeo umoci apache2-utils)`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-skopeo-'))
  let ferry: FerryProcess | undefined
  t.teardown(async () => {
    if (ferry && !t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-8000)}`)
    await ferry?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { pusher: 'pusher-pw' })
  ferry = await startFerryProcess([
    'serve',
    '--listen',
    '127.0.0.1:0',
    '--storage',
    join(work, 'data'),
    '--log-level',
    'info',
    '--htpasswd',
    htpasswd,
    '--anonymous-pull',
    'e2e/**',
  ])
  const { host, url } = ferry

  // --insecure-policy: no dependence on /etc/containers/policy.json; Ferry speaks plain http.
  const destCreds = ['--dest-creds', 'pusher:pusher-pw']
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 180_000 })
  const inspectRaw = async (ref: string): Promise<Buffer> =>
    Buffer.from((await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/${ref}`)).stdout, 'utf8')
  const inspect = async (ref: string, ...flags: string[]): Promise<SkopeoInspect> =>
    JSON.parse((await skopeo('inspect', ...flags, '--tls-verify=false', `docker://${host}/${ref}`)).stdout) as SkopeoInspect
  const listTags = async (repo: string): Promise<string[]> =>
    (JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${host}/${repo}`)).stdout) as { Tags: string[] }).Tags

  // ---- fixtures -------------------------------------------------------------------------------
  const layout = join(work, 'src-layout')
  const scratch = join(work, 'scratch')
  await initLayout(layout)
  // v1: four layers, one of 6 MiB of random data (gzip cannot shrink it).
  await buildImage(layout, 'v1', { layerSizes: [6 * MiB, 64 * KiB, 1 * KiB, 512 * KiB], architecture: 'amd64' }, scratch)
  await buildImage(layout, 'amd64', { layerSizes: [512 * KiB, 16 * KiB], architecture: 'amd64' }, scratch)
  await buildImage(layout, 'arm64', { layerSizes: [768 * KiB, 8 * KiB, 2 * KiB], architecture: 'arm64' }, scratch)
  await gcLayout(layout)

  const platformDescriptor = async (tag: string): Promise<Descriptor> => {
    const descriptor = await tagDescriptor(layout, tag)
    const manifest = JSON.parse((await readBlob(layout, descriptor.digest)).toString('utf8')) as ImageManifest
    return { ...descriptor, platform: await imagePlatform(layout, manifest) }
  }
  const children = [await platformDescriptor('amd64'), await platformDescriptor('arm64')]
  const indexDescriptor = await writeIndex(layout, 'multi', children)

  const v1 = await tagDescriptor(layout, 'v1')
  const v1Bytes = await readBlob(layout, v1.digest)
  const v1Manifest = JSON.parse(v1Bytes.toString('utf8')) as ImageManifest
  t.equal(v1.mediaType, ociMediaTypes.manifest, 'umoci builds OCI manifests')
  t.ok(v1Manifest.layers.length >= 3, `fixture has ${v1Manifest.layers.length} layers`)
  t.ok(
    v1Manifest.layers.some((l) => l.size > 5 * MiB),
    'fixture has a layer of several MiB',
  )

  /** Checks that every blob `manifest` references is in `pulled` with the digest and size of the original. */
  const checkBlobs = async (t: Test, pulled: string, manifest: ImageManifest): Promise<void> => {
    for (const d of [manifest.config, ...manifest.layers]) {
      t.equal(await sha256File(blobPath(pulled, d.digest)), d.digest, `pulled blob ${d.digest.slice(0, 19)} hashes to its digest`)
      t.equal((await readBlob(pulled, d.digest)).length, d.size, `pulled blob ${d.digest.slice(0, 19)} has size ${d.size}`)
    }
  }

  // ---- tests ----------------------------------------------------------------------------------
  t.test('multi-layer OCI image: push, inspect and pull back byte-exact', async (t) => {
    await skopeo(
      'copy',
      '--preserve-digests',
      ...destCreds,
      '--dest-tls-verify=false',
      `oci:${layout}:v1`,
      `docker://${host}/e2e/multi-layer:v1`,
    )

    const raw = await inspectRaw('e2e/multi-layer:v1')
    t.equal(sha256(raw), v1.digest, 'skopeo inspect --raw: the digest of the layout manifest')
    t.ok(raw.equals(v1Bytes), 'skopeo inspect --raw: the exact bytes of the layout manifest')

    const info = await inspect('e2e/multi-layer:v1')
    t.equal(info.Digest, v1.digest, 'skopeo inspect reports the manifest digest')
    t.same(
      info.Layers,
      v1Manifest.layers.map((l) => l.digest),
      'and every layer, in order',
    )
    t.equal(info.Architecture, 'amd64')

    const response = await fetch(`${url}/v2/e2e/multi-layer/manifests/v1`, { headers: { accept: ociMediaTypes.manifest } })
    t.equal(response.status, 200)
    t.equal(response.headers.get('content-type'), ociMediaTypes.manifest, 'served with the OCI media type')
    t.equal(response.headers.get('docker-content-digest'), v1.digest)
    t.ok(Buffer.from(await response.arrayBuffer()).equals(v1Bytes), 'GET returns the pushed bytes')

    const pulled = join(work, 'pulled-multi-layer')
    await skopeo('copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/e2e/multi-layer:v1`, `oci:${pulled}:v1`)
    const back = await tagDescriptor(pulled, 'v1')
    t.equal(back.digest, v1.digest, 'pulled manifest digest equals the original')
    t.equal(back.mediaType, ociMediaTypes.manifest)
    t.ok((await readBlob(pulled, back.digest)).equals(v1Bytes), 'pulled manifest bytes equal the original')
    await checkBlobs(t, pulled, v1Manifest)
    for (const d of [v1Manifest.config, ...v1Manifest.layers]) {
      t.ok(
        (await readBlob(pulled, d.digest)).equals(await readBlob(layout, d.digest)),
        `blob ${d.digest.slice(0, 19)} equals the original file`,
      )
    }
  })

  t.test('multi-platform index: copy --all and back, digests preserved', async (t) => {
    const indexBytes = await readBlob(layout, indexDescriptor.digest)
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      ...destCreds,
      '--dest-tls-verify=false',
      `oci:${layout}:multi`,
      `docker://${host}/e2e/multi-arch:v1`,
    )

    const raw = await inspectRaw('e2e/multi-arch:v1')
    t.equal(sha256(raw), indexDescriptor.digest, 'the index keeps its digest')
    t.ok(raw.equals(indexBytes), 'the index keeps its bytes')
    const served = await fetch(`${url}/v2/e2e/multi-arch/manifests/v1`, { method: 'HEAD', headers: { accept: ociMediaTypes.index } })
    t.equal(served.status, 200)
    t.equal(served.headers.get('content-type'), ociMediaTypes.index, 'served as an OCI index')
    t.equal(served.headers.get('docker-content-digest'), indexDescriptor.digest)

    for (const child of children) {
      const childRaw = await inspectRaw(`e2e/multi-arch@${child.digest}`)
      t.ok(childRaw.equals(await readBlob(layout, child.digest)), `the ${child.platform?.architecture} manifest is present byte-exact`)
      // skopeo inspect reports the digest of the tag's own manifest (the index) but the layers and
      // platform of the instance it selected.
      const arch = child.platform?.architecture ?? ''
      const selected = await inspect('e2e/multi-arch:v1', '--override-arch', arch, '--override-os', 'linux')
      const childManifest = JSON.parse(childRaw.toString('utf8')) as ImageManifest
      t.equal(selected.Digest, indexDescriptor.digest, 'skopeo inspect of the tag reports the index digest')
      t.equal(selected.Architecture, arch, `skopeo selects the ${arch} manifest from the index`)
      t.same(
        selected.Layers,
        childManifest.layers.map((l) => l.digest),
        `with the ${arch} layers`,
      )
    }

    const pulled = join(work, 'pulled-multi-arch')
    await skopeo('copy', '--all', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/e2e/multi-arch:v1`, `oci:${pulled}:v1`)
    const back = await tagDescriptor(pulled, 'v1')
    t.equal(back.digest, indexDescriptor.digest, 'pulled index digest equals the original')
    t.equal(back.mediaType, ociMediaTypes.index)
    const pulledIndex = JSON.parse((await readBlob(pulled, back.digest)).toString('utf8')) as ImageIndex
    t.same(
      pulledIndex.manifests.map((m) => [m.digest, m.platform?.architecture]),
      children.map((c) => [c.digest, c.platform?.architecture]),
      'both platform manifests are listed',
    )
    for (const child of children) {
      const bytes = await readBlob(pulled, child.digest)
      t.equal(sha256(bytes), child.digest, `pulled ${child.platform?.architecture} manifest hashes to its digest`)
      await checkBlobs(t, pulled, JSON.parse(bytes.toString('utf8')) as ImageManifest)
    }
  })

  t.test('--format v2s2 pushes a Docker schema2 manifest', async (t) => {
    await skopeo(
      'copy',
      '--format',
      'v2s2',
      ...destCreds,
      '--dest-tls-verify=false',
      `oci:${layout}:v1`,
      `docker://${host}/e2e/docker-format:v1`,
    )
    const raw = await inspectRaw('e2e/docker-format:v1')
    const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest
    t.equal(manifest.mediaType, dockerTypes.manifest, 'the manifest is Docker schema2')
    t.equal(manifest.config.mediaType, dockerTypes.config)
    t.same(
      manifest.layers.map((l) => l.mediaType),
      v1Manifest.layers.map(() => dockerTypes.layer),
      'Docker layer media types',
    )
    t.same(
      manifest.layers.map((l) => l.digest),
      v1Manifest.layers.map((l) => l.digest),
      'the same gzip layers, not recompressed',
    )

    const info = await inspect('e2e/docker-format:v1')
    t.equal(info.Digest, sha256(raw), 'skopeo inspect digest is the digest of the served bytes')

    const head = await fetch(`${url}/v2/e2e/docker-format/manifests/v1`, { method: 'HEAD', headers: { accept: dockerTypes.manifest } })
    t.equal(head.status, 200)
    t.equal(head.headers.get('content-type'), dockerTypes.manifest, 'HEAD reports the Docker media type')
    t.equal(head.headers.get('docker-content-digest'), info.Digest)
    t.equal(head.headers.get('content-length'), String(raw.length))

    // dir: keeps the manifest as served, so the pull-back can be compared byte for byte.
    const pulled = join(work, 'pulled-docker-format')
    await skopeo('copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/e2e/docker-format:v1`, `dir:${pulled}`)
    t.ok((await readFile(join(pulled, 'manifest.json'))).equals(raw), 'pulled Docker manifest bytes equal the served ones')
    for (const d of [manifest.config, ...manifest.layers]) {
      t.equal(
        await sha256File(join(pulled, d.digest.slice('sha256:'.length))),
        d.digest,
        `pulled blob ${d.digest.slice(0, 19)} hashes to its digest`,
      )
    }
  })

  t.test('list-tags', async (t) => {
    // Registry-to-registry copies add tags without new content.
    await skopeo(
      'copy',
      '--preserve-digests',
      '--src-tls-verify=false',
      ...destCreds,
      '--dest-tls-verify=false',
      `docker://${host}/e2e/multi-layer:v1`,
      `docker://${host}/e2e/multi-layer:v2`,
    )
    await skopeo(
      'copy',
      '--preserve-digests',
      ...destCreds,
      '--dest-tls-verify=false',
      `oci:${layout}:amd64`,
      `docker://${host}/e2e/multi-layer:amd64-only`,
    )
    t.same([...(await listTags('e2e/multi-layer'))].sort(), ['amd64-only', 'v1', 'v2'], 'every pushed tag is listed')
    t.same(await listTags('e2e/multi-arch'), ['v1'])
    t.equal((await inspect('e2e/multi-layer:v2')).Digest, v1.digest, 'the copied tag points at the same manifest')
  })

  t.test('delete removes the manifest and the tags pointing at it', async (t) => {
    for (const tag of ['a', 'b']) {
      await skopeo(
        'copy',
        '--preserve-digests',
        ...destCreds,
        '--dest-tls-verify=false',
        `oci:${layout}:v1`,
        `docker://${host}/e2e/delete-me:${tag}`,
      )
    }
    await skopeo(
      'copy',
      '--preserve-digests',
      ...destCreds,
      '--dest-tls-verify=false',
      `oci:${layout}:arm64`,
      `docker://${host}/e2e/delete-me:keep`,
    )
    t.same([...(await listTags('e2e/delete-me'))].sort(), ['a', 'b', 'keep'])

    // skopeo resolves the tag, then sends DELETE /v2/<repo>/manifests/<digest>.
    await skopeo('delete', '--creds', 'pusher:pusher-pw', '--tls-verify=false', `docker://${host}/e2e/delete-me:b`)
    await t.rejects(inspectRaw('e2e/delete-me:b'), /manifest unknown|MANIFEST_UNKNOWN/i, 'the deleted tag no longer resolves')
    await t.rejects(inspectRaw('e2e/delete-me:a'), /manifest unknown|MANIFEST_UNKNOWN/i, 'nor does the other tag of that manifest')
    const byDigest = await fetch(`${url}/v2/e2e/delete-me/manifests/${v1.digest}`, { headers: { accept: ociMediaTypes.manifest } })
    t.equal(byDigest.status, 404, 'GET by digest is 404 after the delete')
    t.same(await listTags('e2e/delete-me'), ['keep'], 'list-tags shows only the remaining tag')

    await skopeo('delete', '--creds', 'pusher:pusher-pw', '--tls-verify=false', `docker://${host}/e2e/docker-format:v1`)
    await t.rejects(inspectRaw('e2e/docker-format:v1'), /manifest unknown|MANIFEST_UNKNOWN/i, 'the Docker-format manifest is gone too')

    // The same manifest and layers in other repositories are untouched.
    t.ok((await inspectRaw('e2e/multi-layer:v1')).equals(v1Bytes), 'e2e/multi-layer:v1 still serves its manifest')
    for (const d of [v1Manifest.config, ...v1Manifest.layers]) {
      const head = await fetch(`${url}/v2/e2e/multi-layer/blobs/${d.digest}`, { method: 'HEAD' })
      t.equal(head.status, 200, `shared blob ${d.digest.slice(0, 19)} is still served in e2e/multi-layer`)
    }
  })

  t.test('pushes follow the Bearer challenge to the token service; no credentials, no push', async (t) => {
    await t.rejects(
      skopeo('copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${layout}:amd64`, `docker://${host}/e2e/anonymous:v1`),
      /unauthorized|authentication required/i,
      'an anonymous push is refused',
    )
    await t.rejects(
      skopeo(
        'copy',
        '--preserve-digests',
        '--dest-creds',
        'pusher:wrong',
        '--dest-tls-verify=false',
        `oci:${layout}:amd64`,
        `docker://${host}/e2e/anonymous:v1`,
      ),
      /unauthorized|authentication required/i,
      'so is a push with a wrong password',
    )
    const records = ferry!
      .logs()
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>]
        } catch {
          return []
        }
      })
    t.ok(
      records.some((r) => r.msg === 'request' && r.route === '/token' && r.method === 'GET' && r.status === 200),
      'skopeo asked /token for tokens',
    )
    const pushes = records.filter((r) => r.audit === true && r.action === 'push' && r.status === 201)
    t.ok(pushes.length > 0, `${pushes.length} audited pushes`)
    t.ok(
      pushes.every((r) => r.user === 'pusher' && r.via === 'bearer'),
      'every one by pusher, with a bearer token',
    )
    t.ok(
      records.some((r) => r.audit === true && r.action === 'delete' && r.user === 'pusher' && r.status === 202),
      'deletes audited too',
    )
    t.ok(
      records.some((r) => r.msg === 'login failed' && r.user === 'pusher'),
      'the wrong password is an audited login failure',
    )
    t.notOk(ferry!.logs().includes('pusher-pw'), 'the password is in no log line')
  })
}
