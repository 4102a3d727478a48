// containerd 1.6 pulling from Ferry over HTTPS with a private CA, configured the way the README
// tells operators to: hosts.toml with `[host."https://…"] ca = "<CA file>"` (and, for mTLS,
// `client = [["<cert>", "<key>"]]`). The image is pushed into Ferry first with skopeo over TLS
// as `library/tls-test:v1`; pushed repositories are served locally, so `gcr.io/library/tls-test:v1`
// resolves through the gcr.io mirror entry to Ferry, while the hosts.toml `server` is a stand-in
// answering 503 and Ferry's gcr.io upstream is a closed port: a successful pull came from Ferry.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { containerdUnavailable, startContainerd, type Containerd } from '../helpers/containerd.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { closedPort, startStub, type HttpStub } from '../helpers/http-stub.js'
import { buildImage, gcLayout, initLayout, tagDescriptor } from '../helpers/oci-layout.js'
import { issueClientCert, issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { writeTlsFerryConfig } from '../helpers/tls-ferry.js'
import { run } from '../helpers/tools.js'

const KiB = 1024
const image = 'gcr.io/library/tls-test:v1'

const why = containerdUnavailable('skopeo', 'umoci') ?? pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `containerd TLS e2e skipped: ${why}`)
} else {
  t.test('containerd pulls through Ferry over HTTPS', main)
}

async function main(t: Test): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-ctd-tls-'))
  const ferries: FerryProcess[] = []
  let standIn: HttpStub | undefined
  t.teardown(async () => {
    for (const ferry of ferries) {
      if (!t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-6000)}`)
      await ferry.stop()
    }
    await standIn?.close()
    await rm(work, { recursive: true, force: true })
  })

  const ca = await makeCa(join(work, 'pki'))
  const server = await issueServerCert(ca, { cn: 'ferry.test', name: 'server' })
  const client = await issueClientCert(ca, { cn: 'containerd-node', name: 'node' })
  const skopeoCerts = join(work, 'skopeo-certs')
  await mkdir(skopeoCerts)
  await copyFile(ca.certPath, join(skopeoCerts, 'ca.crt'))
  await copyFile(client.certPath, join(skopeoCerts, 'client.cert'))
  await copyFile(client.keyPath, join(skopeoCerts, 'client.key'))

  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'v1', { layerSizes: [256 * KiB, 4 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const v1 = await tagDescriptor(layout, 'v1')

  standIn = await startStub((_request, response) => {
    response.writeHead(503, { 'content-type': 'text/plain' })
    response.end('stand-in for gcr.io: not the mirror')
  })
  const deadUpstream = `gcr.io=http://127.0.0.1:${await closedPort()}`

  /** A Ferry over TLS holding the image, pushed with skopeo through the same TLS port. */
  const startFerry = async (name: string, flags: string[]): Promise<FerryProcess> => {
    const dir = join(work, name)
    await mkdir(dir)
    const config = await writeTlsFerryConfig(dir, {})
    const ferry = await startFerryProcess([
      'serve',
      '--config',
      config.file,
      '--log-level',
      'info',
      '--upstream',
      deadUpstream,
      '--default-upstream',
      'gcr.io',
      '--tls-cert',
      server.certPath,
      '--tls-key',
      server.keyPath,
      ...flags,
    ])
    ferries.push(ferry)
    const creds = config.credentials ? [`--dest-creds=${config.credentials.username}:${config.credentials.password}`] : []
    await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--preserve-digests',
        `--dest-cert-dir=${skopeoCerts}`,
        ...creds,
        `oci:${layout}:v1`,
        `docker://${ferry.host}/library/tls-test:v1`,
      ],
      {
        timeoutMs: 120_000,
      },
    )
    return ferry
  }
  const [tlsFerry, mtlsFerry] = await Promise.all([startFerry('ferry-tls', []), startFerry('ferry-mtls', ['--tls-client-ca', ca.certPath])])

  let snapshotter = 'overlayfs'
  {
    const probe = await startContainerd()
    try {
      if ((await probe.snapshotters()).get('overlayfs') !== 'ok') snapshotter = 'native'
    } finally {
      await probe.stop()
    }
  }

  let dirs = 0
  /** `<dir>/gcr.io/hosts.toml` with Ferry's https endpoint as the one mirror. */
  const hostsDir = async (ferry: FerryProcess, hostLines: string[]): Promise<string> => {
    const dir = join(work, `hosts-${++dirs}`)
    await mkdir(join(dir, 'gcr.io'), { recursive: true })
    const toml = [
      `server = "${standIn!.url}"`,
      '',
      `[host."${ferry.url}"]`,
      '  capabilities = ["pull", "resolve"]',
      ...hostLines.map((l) => `  ${l}`),
      '',
    ]
    await writeFile(join(dir, 'gcr.io', 'hosts.toml'), toml.join('\n'))
    return dir
  }
  const freshContainerd = async (t: Test): Promise<Containerd> => {
    const containerd = await startContainerd()
    t.teardown(async () => {
      if (!t.passing()) t.comment(`containerd output (tail):\n${containerd.logs().slice(-6000)}`)
      await containerd.stop()
    })
    return containerd
  }
  const blobGets = (ferry: FerryProcess): number =>
    ferry
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{') && l.includes('"msg":"request"') && l.includes('"route":"blob"') && l.includes('"status":200'))
      .length

  t.test('hosts.toml with ca = "<CA file>": the pull is served by Ferry over TLS', async (t) => {
    const containerd = await freshContainerd(t)
    const before = blobGets(tlsFerry)
    const stubBefore = standIn!.requests.length
    const pulled = await containerd.pull(image, { hostsDir: await hostsDir(tlsFerry, [`ca = "${ca.certPath}"`]), snapshotter })
    t.match(pulled.stdout, new RegExp(`unpacking linux/amd64 ${v1.digest}\\.\\.\\.\\s*done`), 'ctr pulled and unpacked the image')
    t.equal((await containerd.images()).find((row) => row.ref === image)?.digest, v1.digest, 'ctr images ls shows the pushed digest')
    t.equal(blobGets(tlsFerry) - before, 3, 'Ferry served the config and both layers')
    t.equal(standIn!.requests.length, stubBefore, 'the stand-in server got nothing')
  })

  t.test("without the CA, containerd refuses Ferry's certificate and the pull fails", async (t) => {
    const containerd = await freshContainerd(t)
    await t.rejects(containerd.pull(image, { hostsDir: await hostsDir(tlsFerry, []), snapshotter, timeoutMs: 60_000 }), /x509|certificate/)
  })

  t.test('mTLS: with client = [[cert, key]] the pull works; without, Ferry refuses the handshake', async (t) => {
    const containerd = await freshContainerd(t)
    await t.rejects(
      containerd.pull(image, { hostsDir: await hostsDir(mtlsFerry, [`ca = "${ca.certPath}"`]), snapshotter, timeoutMs: 60_000 }),
      /certificate required|bad certificate|handshake|remote error/i,
      'no client certificate: refused',
    )
    const pulled = await containerd.pull(image, {
      hostsDir: await hostsDir(mtlsFerry, [`ca = "${ca.certPath}"`, `client = [["${client.certPath}", "${client.keyPath}"]]`]),
      snapshotter,
    })
    t.match(
      pulled.stdout,
      new RegExp(`unpacking linux/amd64 ${v1.digest}\\.\\.\\.\\s*done`),
      'with the node certificate: pulled and unpacked',
    )
  })
}
