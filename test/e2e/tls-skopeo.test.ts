// skopeo against Ferry (a real `ferry serve --tls-cert --tls-key` process) over HTTPS with a
// private CA: push and pull byte-exact through `--dest-cert-dir`/`--src-cert-dir` folders holding
// the CA as `ca.crt`; no trust → refused; mTLS (`--tls-client-ca`) with and without a client pair
// (`client.cert` + `client.key` in the cert folder); HTTP/2 and HTTP/1.1 clients on the process.
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { h2Request } from '../helpers/h2.js'
import { httpsRequest } from '../helpers/https.js'
import {
  blobPath,
  buildImage,
  gcLayout,
  initLayout,
  readBlob,
  sha256File,
  tagDescriptor,
  type ImageManifest,
} from '../helpers/oci-layout.js'
import { issueClientCert, issueServerCert, makeCa, makeIntermediateCa, pkiUnavailable } from '../helpers/pki.js'
import { basicAuthorization, writeTlsFerryConfig } from '../helpers/tls-ferry.js'
import { missingTools, run } from '../helpers/tools.js'

const KiB = 1024
const missing = missingTools('skopeo', 'umoci')
const why = pkiUnavailable() ?? (missing.length > 0 ? `needs ${missing.join(' and ')} on PATH (apt-get install skopeo umoci)` : undefined)
if (why !== undefined) {
  t.plan(0, `tls skopeo e2e skipped: ${why}`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-tls-skopeo-'))
  const ferries: FerryProcess[] = []
  t.teardown(async () => {
    for (const ferry of ferries) {
      if (!t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-6000)}`)
      await ferry.stop()
    }
    await rm(work, { recursive: true, force: true })
  })

  // ---- PKI: a root, an intermediate that issues the server certificate, a client certificate --
  const ca = await makeCa(join(work, 'pki', 'root'))
  const intermediate = await makeIntermediateCa(ca, join(work, 'pki', 'intermediate'))
  const server = await issueServerCert(intermediate, { cn: 'ferry.test', name: 'server' })
  const client = await issueClientCert(ca, { cn: 'skopeo', name: 'client' })
  // skopeo's cert folders: *.crt are CAs, a *.cert/*.key pair is the client certificate.
  const trustDir = join(work, 'certs-trust')
  const clientDir = join(work, 'certs-client')
  await mkdir(trustDir)
  await mkdir(clientDir)
  await copyFile(ca.certPath, join(trustDir, 'ca.crt'))
  await copyFile(ca.certPath, join(clientDir, 'ca.crt'))
  await copyFile(client.certPath, join(clientDir, 'client.cert'))
  await copyFile(client.keyPath, join(clientDir, 'client.key'))

  const start = async (name: string, flags: string[]) => {
    const dir = join(work, name)
    await mkdir(dir)
    const config = await writeTlsFerryConfig(dir, { http2: true })
    const ferry = await startFerryProcess([
      'serve',
      '--config',
      config.file,
      '--log-level',
      'info',
      '--tls-cert',
      server.fullChainPath,
      '--tls-key',
      server.keyPath,
      ...flags,
    ])
    ferries.push(ferry)
    return { ferry, credentials: config.credentials }
  }
  const [plain, mutual] = await Promise.all([start('ferry-tls', []), start('ferry-mtls', ['--tls-client-ca', ca.certPath])])
  const creds = plain.credentials ? [`--dest-creds=${plain.credentials.username}:${plain.credentials.password}`] : []
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

  // ---- fixture: a small OCI image built with umoci ------------------------------------------
  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'v1', { layerSizes: [700 * KiB, 5 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const v1 = await tagDescriptor(layout, 'v1')
  const manifest = JSON.parse((await readBlob(layout, v1.digest)).toString('utf8')) as ImageManifest

  t.test('the process announces an https URL', async (t) => {
    t.match(plain.ferry.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    t.notMatch(plain.ferry.logs(), /TLS is off/)
  })

  t.test('skopeo pushes and pulls over HTTPS with the CA in --dest-cert-dir / --src-cert-dir', async (t) => {
    const host = plain.ferry.host
    await skopeo('copy', '--preserve-digests', `--dest-cert-dir=${trustDir}`, ...creds, `oci:${layout}:v1`, `docker://${host}/tls/app:v1`)
    const inspected = JSON.parse((await skopeo('inspect', `--cert-dir=${trustDir}`, `docker://${host}/tls/app:v1`)).stdout) as {
      Digest: string
    }
    t.equal(inspected.Digest, v1.digest, 'skopeo inspect over HTTPS sees the pushed digest')
    const pulled = join(work, 'pulled')
    await skopeo('copy', '--preserve-digests', `--src-cert-dir=${trustDir}`, `docker://${host}/tls/app:v1`, `oci:${pulled}:v1`)
    t.equal((await tagDescriptor(pulled, 'v1')).digest, v1.digest, 'pulled manifest digest equals the original')
    for (const d of [manifest.config, ...manifest.layers]) {
      t.equal(await sha256File(blobPath(pulled, d.digest)), d.digest, `blob ${d.digest.slice(0, 19)}… byte-exact`)
    }
  })

  t.test('without the CA, skopeo refuses the certificate', async (t) => {
    const empty = join(work, 'certs-empty')
    await mkdir(empty, { recursive: true })
    await t.rejects(
      skopeo('inspect', `--cert-dir=${empty}`, `docker://${plain.ferry.host}/tls/app:v1`),
      /certificate signed by unknown authority|x509/,
    )
  })

  t.test('HTTP/2 and HTTP/1.1 clients get 200 on /v2/ from the process', async (t) => {
    const auth = basicAuthorization(plain.credentials)
    const h2 = await h2Request(plain.ferry.url, '/v2/', { headers: auth, session: { ca: ca.certPem } })
    t.equal(h2.status, 200, 'HTTP/2')
    const h1 = await httpsRequest(`${plain.ferry.url}/v2/`, { ca: ca.certPem, headers: auth })
    t.equal(h1.status, 200, 'HTTP/1.1')
    t.equal(h1.httpVersion, '1.1')
  })

  t.test('mTLS: skopeo without a client certificate is refused at the handshake; with one it pushes and pulls', async (t) => {
    const host = mutual.ferry.host
    const refused = skopeo('inspect', `--cert-dir=${trustDir}`, `docker://${host}/tls/app:v1`)
    await t.rejects(refused, /certificate required|bad certificate|handshake|remote error/i, 'no client certificate')
    const mutualCreds = mutual.credentials ? [`--dest-creds=${mutual.credentials.username}:${mutual.credentials.password}`] : []
    await skopeo(
      'copy',
      '--preserve-digests',
      `--dest-cert-dir=${clientDir}`,
      ...mutualCreds,
      `oci:${layout}:v1`,
      `docker://${host}/tls/app:v1`,
    )
    const inspected = JSON.parse((await skopeo('inspect', `--cert-dir=${clientDir}`, `docker://${host}/tls/app:v1`)).stdout) as {
      Digest: string
    }
    t.equal(inspected.Digest, v1.digest, 'with client.cert + client.key: push and inspect work')
  })
}
