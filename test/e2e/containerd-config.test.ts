// `ferry containerd-config` proven with real containerd 1.6: the generated certs.d tree is handed
// to `ctr images pull --hosts-dir` as is, against a Ferry serving TLS with a private CA (the CA
// reaches containerd only through the generated `ca`), mirroring CNCF distribution as gcr.io.
// The image differs by path: the upstream has one image at library/nautilus:1.0, and another is
// pushed into Ferry under test-namespace/, which shadows the upstream there. So the digest pulled
// says which path containerd took: the mirror root without a namespace, /v2/test-namespace with
// override_path with one. The hosts.toml `server` is a stand-in answering 503 (named with
// --registries gcr.io=URL), so a successful pull was served by Ferry.
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { containerdUnavailable, startContainerd, type Containerd } from '../helpers/containerd.js'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { startStub, type HttpStub } from '../helpers/http-stub.js'
import { buildImage, gcLayout, initLayout, tagDescriptor } from '../helpers/oci-layout.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { writeTlsFerryConfig } from '../helpers/tls-ferry.js'
import { run } from '../helpers/tools.js'

const KiB = 1024
const ref = 'gcr.io/library/nautilus:1.0'

const why = containerdUnavailable('skopeo', 'umoci') ?? distributionUnavailable() ?? pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `containerd-config e2e skipped: ${why}`)
} else {
  t.test('containerd pulls through Ferry with the files ferry containerd-config wrote', main)
}

async function main(t: Test): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-ctd-config-'))
  let ferry: FerryProcess | undefined
  let distribution: Distribution | undefined
  let standIn: HttpStub | undefined
  let containerd: Containerd | undefined
  t.teardown(async () => {
    if (!t.passing() && ferry) t.comment(`ferry output (tail):\n${ferry.logs().slice(-6000)}`)
    if (!t.passing() && containerd) t.comment(`containerd output (tail):\n${containerd.logs().slice(-6000)}`)
    await containerd?.stop()
    await ferry?.stop()
    await distribution?.stop()
    await standIn?.close()
    await rm(work, { recursive: true, force: true })
  })

  const ca = await makeCa(join(work, 'pki'))
  const server = await issueServerCert(ca, { cn: 'ferry.test', name: 'server' })
  const skopeoCerts = join(work, 'skopeo-certs')
  await mkdir(skopeoCerts)
  await copyFile(ca.certPath, join(skopeoCerts, 'ca.crt'))

  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'upstream', { layerSizes: [96 * KiB, 4 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await buildImage(layout, 'pushed', { layerSizes: [32 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const upstreamImage = await tagDescriptor(layout, 'upstream')
  const pushedImage = await tagDescriptor(layout, 'pushed')

  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', 'copy', '--preserve-digests', ...args], { timeoutMs: 120_000 })
  distribution = await startDistribution()
  await skopeo('--dest-tls-verify=false', `oci:${layout}:upstream`, `docker://${distribution.host}/library/nautilus:1.0`)
  standIn = await startStub((_request, response) => {
    response.writeHead(503, { 'content-type': 'text/plain' })
    response.end('stand-in for gcr.io: not the mirror')
  })

  const config = await writeTlsFerryConfig(
    work,
    { cert: server.fullChainPath, key: server.keyPath },
    { mirror: { upstreams: [{ name: 'gcr.io', url: distribution.url }], namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }] } },
  )
  ferry = await startFerryProcess(['serve', '--config', config.file, '--log-level', 'info'])
  const creds = config.credentials ? [`--dest-creds=${config.credentials.username}:${config.credentials.password}`] : []
  await skopeo(
    `--dest-cert-dir=${skopeoCerts}`,
    ...creds,
    `oci:${layout}:pushed`,
    `docker://${ferry.host}/test-namespace/library/nautilus:1.0`,
  )

  /** Runs the generator in-process, as `ferry containerd-config ...`, and returns the hosts dir. */
  const generate = async (t: Test, name: string, flags: string[]): Promise<string> => {
    const output = join(work, name)
    const fake = fakeIo()
    const args = ['--endpoint', ferry!.url, '--ca', ca.certPath, '--registries', `gcr.io=${standIn!.url}`, '--output', output]
    await runCli(['node', 'ferry', 'containerd-config', ...args, '--config', config.file, ...flags], fake.io)
    t.same(fake.exits, [], `generator exit (stderr: ${fake.stderr()})`)
    t.notMatch(fake.stderr(), /warning/, 'the registries and namespace are ones Ferry serves')
    return join(output, 'certs.d')
  }

  containerd = await startContainerd()
  const snapshotter = (await containerd.snapshotters()).get('overlayfs') === 'ok' ? 'overlayfs' : 'native'
  const pulledDigest = async (hostsDir: string, namespace: string): Promise<string | undefined> => {
    await containerd!.pull(ref, { hostsDir, snapshotter, namespace, timeoutMs: 60_000 })
    return (await containerd!.images(namespace)).find((row) => row.ref === ref)?.digest
  }

  await t.test('without a namespace: the mirror root, the image mirrored from the upstream', async (t) => {
    const hostsDir = await generate(t, 'plain', [])
    const toml = await readFile(join(hostsDir, 'gcr.io', 'hosts.toml'), 'utf8')
    t.notMatch(toml, /override_path/)
    t.equal(await pulledDigest(hostsDir, 'plain'), upstreamImage.digest, 'pulled the upstream image')
  })

  await t.test('with --namespace: /v2/test-namespace with override_path, where the pushed image shadows the upstream', async (t) => {
    const hostsDir = await generate(t, 'namespaced', ['--namespace', 'test-namespace'])
    t.match(await readFile(join(hostsDir, 'gcr.io', 'hosts.toml'), 'utf8'), /override_path = true/)
    t.equal(await pulledDigest(hostsDir, 'namespaced'), pushedImage.digest, 'pulled the image pushed under test-namespace')
    const requests = ferry!
      .logs()
      .split('\n')
      .filter((l) => l.includes('"msg":"request"') && l.includes('"route":"manifest"'))
    t.ok(
      requests.some((l) => l.includes('"repo":"test-namespace/library/nautilus"')),
      'Ferry served the repository under the namespace',
    )
  })

  t.equal(standIn.requests.length, 0, 'the fallback server was never asked: Ferry served every pull')
}
