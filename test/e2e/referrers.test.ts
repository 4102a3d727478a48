// Referrers (manifests whose `subject` is an image: signatures, SBOMs) travel with their image
// through `ferry bundle create` and `ferry pull`: found through Ferry's referrers API and, on CNCF
// distribution 2.8 (which has none), through the OCI 1.1 fallback tag `sha256-<hex>`; the bundle
// lists them in index.json and its table of contents, and `ferry push images` brings them back
// into Ferry as referrers of the same image, byte for byte.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { startAuthServer } from '../helpers/auth-server.js'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { buildImage, gcLayout, initLayout, sha256, tagDescriptor, type Descriptor } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const user = 'admin'
const password = 'admin-pw'
const auth = { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` }
const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

async function ferry(...args: string[]): Promise<{ exit: number; stdout: string; stderr: string }> {
  const fake = fakeIo()
  await runCli(['node', 'ferry', ...args], fake.io)
  return { exit: fake.exits[0] ?? -1, stdout: fake.stdout(), stderr: fake.stderr() }
}

const missing = [...missingTools('skopeo', 'umoci', 'htpasswd'), ...(distributionUnavailable() ? ['docker-registry'] : [])]
if (missing.length > 0) t.plan(0, `referrers e2e skipped: ${missing.join(', ')} not on PATH`)
else await main()

interface Pushed {
  digest: string
  bytes: Buffer
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-referrers-'))
  let distribution: Distribution | undefined
  t.teardown(async () => {
    await distribution?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'app', { layerSizes: [64 * 1024], architecture: 'amd64' }, join(work, 'scratch'))
  await buildImage(layout, 'other', { layerSizes: [32 * 1024], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const image = await tagDescriptor(layout, 'app')
  const other = await tagDescriptor(layout, 'other')

  const server = await startAuthServer(t, {
    users: { [user]: password },
    auth: { roles: [{ subjects: [user], namespaces: ['**'], role: 'admin' }] },
  })
  distribution = await startDistribution({ auth: 'htpasswd', users: { [user]: password } })
  const registries = { ferry: { host: server.host, url: server.url }, distribution: { host: distribution.host, url: distribution.url } }
  const copy = (tag: string, to: string) =>
    skopeo(
      'copy',
      '--preserve-digests',
      '--dest-tls-verify=false',
      '--dest-creds',
      `${user}:${password}`,
      `oci:${layout}:${tag}`,
      `docker://${to}`,
    )

  /** Pushes a signature-like artifact whose subject is the image into `repo` (by digest), as cosign/oras do. */
  const attach = async (url: string, repo: string, subject: Descriptor, artifactType: string, payload: string): Promise<Pushed> => {
    const blob = async (bytes: Buffer, mediaType: string): Promise<Descriptor> => {
      const digest = sha256(bytes)
      const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth })
      const location = new URL(start.headers.get('location')!, url)
      location.searchParams.set('digest', digest)
      const put = await fetch(location, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes })
      if (put.status !== 201) throw new Error(`blob upload: ${put.status}`)
      return { mediaType, digest, size: bytes.length }
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType,
        config: await blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json'),
        layers: [await blob(Buffer.from(payload), artifactType)],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      }),
    )
    const digest = sha256(manifest)
    const put = await fetch(`${url}/v2/${repo}/manifests/${digest}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    })
    if (put.status !== 201) throw new Error(`manifest put: ${put.status} ${await put.text()}`)
    return { digest, bytes: manifest }
  }
  /** What an OCI 1.1 client keeps on a registry without the referrers API: an index of them under `sha256-<hex>`. */
  const fallbackTag = async (url: string, repo: string, referrers: Array<Pushed & { artifactType: string }>): Promise<void> => {
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: referrers.map((r) => ({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: r.digest,
        size: r.bytes.length,
        artifactType: r.artifactType,
      })),
    }
    const put = await fetch(`${url}/v2/${repo}/manifests/sha256-${other.digest.slice(7)}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': index.mediaType },
      body: JSON.stringify(index),
    })
    if (put.status !== 201) throw new Error(`fallback tag: ${put.status}`)
  }

  const sigType = 'application/vnd.dev.cosign.artifact.sig.v1+json'
  const sbomType = 'application/spdx+json'
  await copy('app', `${registries.ferry.host}/x/app:1.0`)
  const ferrySig = await attach(registries.ferry.url, 'x/app', image, sigType, 'signed by ferry-side key')
  await copy('other', `${registries.distribution.host}/y/app:1.0`)
  const distSig = await attach(registries.distribution.url, 'y/app', other, sigType, 'signed by distribution-side key')
  const distSbom = await attach(registries.distribution.url, 'y/app', other, sbomType, '{"spdxVersion":"SPDX-2.3"}')
  await fallbackTag(registries.distribution.url, 'y/app', [
    { ...distSig, artifactType: sigType },
    { ...distSbom, artifactType: sbomType },
  ])
  const access = ['--plain-http', '--username', user, '--password', password]
  const ferryRef = `${registries.ferry.host}/x/app:1.0`
  const distRef = `${registries.distribution.host}/y/app:1.0`
  const referrersIn = async (repo: string, subject: Descriptor): Promise<string[]> => {
    const response = await fetch(`${server.url}/v2/${repo}/referrers/${subject.digest}`, { headers: auth })
    const listed = (await response.json()) as { manifests: Array<{ digest: string }> }
    return listed.manifests.map((m) => m.digest).sort()
  }

  await t.test(
    'bundle create takes each image with its referrers (referrers API and tag fallback); push images brings them back',
    async (t) => {
      const bundle = join(work, 'signed.tar')
      const created = await ferry('bundle', 'create', ...access, '--output', bundle, ferryRef, distRef)
      t.equal(created.exit, 0, created.stderr)
      const index = JSON.parse((await run('tar', ['-xOf', bundle, 'index.json'])).stdout) as {
        manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }>
      }
      const unnamed = index.manifests.filter((d) => d.annotations === undefined)
      t.same(
        unnamed.map((d) => [d.digest, d.artifactType]).sort(),
        [
          [ferrySig.digest, sigType],
          [distSig.digest, sigType],
          [distSbom.digest, sbomType],
        ].sort(),
        'every referrer is in index.json, unnamed, with its artifactType',
      )
      const listed = await ferry('bundle', 'ls', bundle)
      t.match(listed.stdout, `↳ referrer  ${distSbom.digest}  ${sbomType}`, 'bundle ls shows them under their image')

      const pushed = await ferry(
        'push',
        'images',
        '--source',
        bundle,
        '--private-registry',
        `http://${server.host}/back`,
        '--digest-map',
        join(work, 'map.json'),
        '--username',
        user,
        '--password',
        password,
      )
      t.equal(pushed.exit, 0, pushed.stderr)
      t.same(await referrersIn('back/x/app', image), [ferrySig.digest], "Ferry's signature is a referrer of the image again")
      t.same(await referrersIn('back/y/app', other), [distSig.digest, distSbom.digest].sort(), "and distribution's signature and SBOM")
      const raw = await skopeo(
        'inspect',
        '--raw',
        '--tls-verify=false',
        '--creds',
        `${user}:${password}`,
        `docker://${server.host}/back/y/app@${distSbom.digest}`,
      )
      t.ok(Buffer.from(raw.stdout, 'utf8').equals(distSbom.bytes), 'byte for byte')
    },
  )

  await t.test('pull keeps them beside the image (unless --no-referrers); extract still finds the one image', async (t) => {
    const dir = join(work, 'pulled')
    const pulled = await ferry('pull', ...access, distRef, dir)
    t.equal(pulled.exit, 0, pulled.stderr)
    t.match(pulled.stdout, '2 referrer(s)')
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    t.same(index.manifests.map((d) => d.digest).sort(), [other.digest, distSig.digest, distSbom.digest].sort())
    t.ok((await readFile(join(dir, 'blobs', 'sha256', distSbom.digest.slice(7)))).equals(distSbom.bytes))
    const extracted = await ferry('extract', dir, join(work, 'rootfs'))
    t.equal(extracted.exit, 0, extracted.stderr)

    const bare = join(work, 'pulled-bare')
    t.equal((await ferry('pull', ...access, '--no-referrers', distRef, bare)).exit, 0)
    const bareIndex = JSON.parse(await readFile(join(bare, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    t.same(
      bareIndex.manifests.map((d) => d.digest),
      [other.digest],
    )
  })
}
