// Ferry pulling through a real HTTPS upstream (CNCF distribution) signed by a private CA, one
// that requires client certificates (mTLS), and one whose CA Ferry does not know (insecure
// mode); then the upstream's CA rotates under a running Ferry.
import { randomBytes } from 'node:crypto'
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import type { UpstreamTlsConfig } from '../../src/config/schema.js'
import { distributionUnavailable, startDistribution, type Distribution, type DistributionTls } from '../helpers/distribution.js'
import { startFerryProcess } from '../helpers/ferry-process.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { issueClientCert, issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const skip = distributionUnavailable() ?? pkiUnavailable()
if (skip) t.plan(0, skip)

const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
const noTls: UpstreamTlsConfig = { caPath: undefined, certPath: undefined, keyPath: undefined, insecureSkipVerify: false }

const work = await mkdtemp(join(tmpdir(), 'ferry-upstream-tls-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
const ca = await makeCa(join(work, 'ca'), { cn: 'Upstream Private CA' })
const serverCert = await issueServerCert(ca, { cn: '127.0.0.1' })
const clientCa = await makeCa(join(work, 'client-ca'), { cn: 'Upstream Client CA' })
const clientCert = await issueClientCert(clientCa, { cn: 'ferry-mirror' })

/** A distribution seeded over plain HTTP with `tags` of team/app, then restarted with `tls`. */
async function httpsUpstream(
  t: Test,
  tls: DistributionTls,
  tags: string[],
): Promise<{ upstream: () => Distribution; images: SeededImage[]; restart(tls: DistributionTls): Promise<void> }> {
  let upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const images: SeededImage[] = []
  for (const tag of tags) images.push(await seedImage(upstream.url, 'team/app', tag, { layers: [randomBytes(50_000)] }))
  upstream = await upstream.restart(tls)
  return {
    upstream: () => upstream,
    images,
    async restart(next) {
      upstream = await upstream.restart(next)
    },
  }
}

async function ferryFor(t: Test, url: string, tls: Partial<UpstreamTlsConfig>): Promise<MirrorServer> {
  const ferry = await startMirrorServer({
    upstreams: [upstreamConfig('private.example', url, { tls: { ...noTls, ...tls } })],
    defaultUpstream: 'private.example',
  })
  t.teardown(() => ferry.close())
  return ferry
}

/** Pulls the image's manifest by tag and every blob through Ferry, checking the bytes. */
async function pull(t: Test, ferry: MirrorServer, tag: string, image: SeededImage): Promise<void> {
  const manifest = await fetch(`${ferry.url}/v2/team/app/manifests/${tag}`, { headers: { accept } })
  t.equal(manifest.status, 200, `manifest ${tag} pulled through ferry`)
  t.same(Buffer.from(await manifest.arrayBuffer()), image.manifest.bytes, 'manifest byte-exact')
  for (const blob of [image.config, ...image.layers]) {
    const response = await fetch(`${ferry.url}/v2/team/app/blobs/${blob.digest}`)
    t.equal(sha256(Buffer.from(await response.arrayBuffer())), blob.digest, 'blob bytes match their digest')
  }
}

async function expectUnavailable(t: Test, ferry: MirrorServer, tag: string): Promise<string | undefined> {
  const response = await fetch(`${ferry.url}/v2/team/app/manifests/${tag}`, { headers: { accept } })
  t.equal(response.status, 503, 'refused upstream answers 503, not 500 and not a hang')
  const body = (await response.json()) as { errors: Array<{ code: string; message: string; detail?: unknown }> }
  t.equal(body.errors[0]?.code, 'UNAVAILABLE')
  t.match(body.errors[0]?.message, /upstream private\.example/, 'the message names the upstream')
  t.notMatch(JSON.stringify(body), /at .*\.ts:\d+|Error:/, 'no stack trace in the error body')
  return body.errors[0]?.message
}

function counter(ferry: MirrorServer, result: 'ok' | 'error'): Promise<number> {
  return ferry.composed.metrics.upstreamTransportReloads.get().then((m) => m.values.find((v) => v.labels.result === result)?.value ?? 0)
}

t.test('private-CA upstream: pulls with tls.caPath, UNAVAILABLE naming the upstream without it', async (t) => {
  const { upstream, images } = await httpsUpstream(t, { certificate: serverCert.fullChainPath, key: serverCert.keyPath }, ['1.0'])
  const trusting = await ferryFor(t, upstream().url, { caPath: ca.certPath })
  await pull(t, trusting, '1.0', images[0]!)
  const untrusting = await ferryFor(t, upstream().url, {})
  const message = await expectUnavailable(t, untrusting, '1.0')
  t.match(message, /TLS handshake/, 'and says why: the TLS handshake')
})

t.test('mTLS upstream: pulls with tls.certPath/keyPath, refused without', async (t) => {
  const tls = { certificate: serverCert.fullChainPath, key: serverCert.keyPath, clientCas: [clientCa.certPath] }
  const { upstream, images } = await httpsUpstream(t, tls, ['1.0'])
  const withCert = await ferryFor(t, upstream().url, { caPath: ca.certPath, certPath: clientCert.certPath, keyPath: clientCert.keyPath })
  await pull(t, withCert, '1.0', images[0]!)
  const without = await ferryFor(t, upstream().url, { caPath: ca.certPath })
  t.comment(`without a client certificate: ${await expectUnavailable(t, without, '1.0')}`)
})

t.test('insecureSkipVerify pulls from an unknown CA and warns naming the upstream', async (t) => {
  const { upstream, images } = await httpsUpstream(t, { certificate: serverCert.fullChainPath, key: serverCert.keyPath }, ['1.0'])
  const ferry = await ferryFor(t, upstream().url, { insecureSkipVerify: true })
  await pull(t, ferry, '1.0', images[0]!)
  const warnings = () =>
    ferry.logs
      .map((l) => JSON.parse(l) as { level: number; msg: string; upstream?: string })
      .filter((l) => l.level === 40 && /verification is OFF/.test(l.msg))
  t.equal(warnings().length, 1, 'warned at start')
  t.equal(warnings()[0]?.upstream, 'private.example')
  await ferry.composed.reloadCredentials()
  t.equal(warnings().length, 2, 'and again on every reload (SIGHUP)')
})

t.test('CA rotation: a new CA file is picked up without a restart; a corrupt one keeps the old transport', async (t) => {
  const tags = ['before', 'after', 'corrupt']
  const setup = await httpsUpstream(t, { certificate: serverCert.fullChainPath, key: serverCert.keyPath }, tags)
  const caFile = join(work, 'rotating-ca.crt')
  await copyFile(ca.certPath, caFile)
  const ferry = await ferryFor(t, setup.upstream().url, { caPath: caFile })
  await pull(t, ferry, 'before', setup.images[0]!)

  // The upstream's operator moves to a new CA: Ferry's CA file is replaced (atomically, as
  // config management does) and the upstream restarts with a certificate from that CA.
  const nextCa = await makeCa(join(work, 'next-ca'), { cn: 'Upstream Private CA 2' })
  const nextCert = await issueServerCert(nextCa, { cn: '127.0.0.1' })
  await writeFile(`${caFile}.tmp`, nextCa.certPem)
  await rename(`${caFile}.tmp`, caFile)
  // The file watch reloads; bounded wait for it, then SIGHUP's path, which finds nothing new.
  for (let i = 0; i < 100 && (await counter(ferry, 'ok')) < 1; i++) await sleep(100)
  t.equal(await counter(ferry, 'ok'), 1, 'the watched CA file reloaded the transport')
  await ferry.composed.reloadCredentials()
  t.equal(await counter(ferry, 'ok'), 1, 'a reload with unchanged files changes nothing')
  await setup.restart({ certificate: nextCert.fullChainPath, key: nextCert.keyPath })
  await pull(t, ferry, 'after', setup.images[1]!)

  await writeFile(caFile, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n')
  await ferry.composed.reloadCredentials()
  t.ok((await counter(ferry, 'error')) >= 1, 'ferry_upstream_transport_reload_total{result="error"} counted')
  const failures = ferry.logs.filter((l) => l.includes('upstream tls reload failed'))
  t.equal(failures.length, 1, 'one error line')
  t.match(failures[0], caFile, 'naming the file')
  t.match(failures[0], 'mirror.upstreams.0.tls.caPath', 'and the config key')
  await pull(t, ferry, 'corrupt', setup.images[2]!)
  const metrics = await ferry.composed.metrics.registry.metrics()
  t.match(metrics, /ferry_upstream_transport_reload_total\{upstream="private.example",result="error"\} [1-9]/)
})

t.test('an unreadable CA file stops start-up with a message naming key and file', async (t) => {
  const dir = await mkdtemp(join(work, 'start-'))
  const missing = join(dir, 'no-such-ca.crt')
  const file = join(dir, 'ferry.yaml')
  await writeFile(
    file,
    [
      'mirror:',
      '  upstreams:',
      '    - name: private.example',
      '      url: https://127.0.0.1:1',
      '      tls:',
      `        caPath: ${missing}`,
      '',
    ].join('\n'),
  )
  const started = startFerryProcess(['serve', '--config', file, '--listen', '127.0.0.1:0', '--storage', join(dir, 'data')])
  await t.rejects(started, /exited before starting \(code 1/, 'exits non-zero')
  const message = await started.catch((err: Error) => err.message)
  t.match(message, 'mirror.upstreams.0.tls.caPath', 'names the key')
  t.match(message, missing, 'names the file')
  t.match(message, 'ENOENT', 'says why')
})
