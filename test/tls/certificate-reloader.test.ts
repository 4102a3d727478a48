// CertificateReloader against a real node:tls server: reload on demand and on file changes
// (atomic renames, Kubernetes-style `..data` symlink swaps), new connections see the new serial
// while an open connection keeps working, and a broken replacement keeps the old certificate,
// logs one error and counts it.
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createServer, connect, type Server } from 'node:tls'
import t, { type Test } from 'tap'
import type { TlsConfig } from '../../src/config/schema.js'
import { createLogger } from '../../src/observability/logger.js'
import { Metrics } from '../../src/observability/metrics.js'
import { CertificateReloader, type CertificateReloaderOptions } from '../../src/tls/certificate-reloader.js'
import { loadCertificateSet, type TlsFiles } from '../../src/tls/certificate-set.js'
import { secureContextOptions } from '../../src/tls/server-options.js'
import { issueServerCert, makeCa, pkiUnavailable, type IssuedCert } from '../helpers/pki.js'
import { probe, waitForSerial } from '../helpers/tls-client.js'

const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `certificate reloader tests skipped: ${why}`)
} else {
  await main()
}

const policy: Pick<TlsConfig, 'minVersion'> = { minVersion: 'TLSv1.2' }

interface Rig {
  port: number
  reloader: CertificateReloader
  metrics: Metrics
  logs: Array<Record<string, unknown>>
  errors(): Array<Record<string, unknown>>
  counter(result: 'ok' | 'error'): Promise<number>
}

async function main(): Promise<void> {
  const dir = t.testdir({})
  const ca = await makeCa(join(dir, 'ca'))
  const certs: IssuedCert[] = []
  for (const name of ['a', 'b', 'c', 'd', 'e']) certs.push(await issueServerCert(ca, { cn: `server-${name}`, name }))
  const [a, b, c, d, e] = certs as [IssuedCert, IssuedCert, IssuedCert, IssuedCert, IssuedCert]
  const trust = { ca: ca.certPem }

  /** Writes `text` to `path` the way rotation tools do: a temp file renamed over the old one. */
  const replace = async (path: string, text: string): Promise<void> => {
    await writeFile(`${path}.tmp`, text)
    await rename(`${path}.tmp`, path)
  }

  /** An echo TLS server serving `files`, with a reloader attached. */
  const rig = async (t: Test, files: TlsFiles, extra: Partial<CertificateReloaderOptions> = {}): Promise<Rig> => {
    const set = await loadCertificateSet(files)
    const server: Server = createServer(secureContextOptions(set, policy), (socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const logs: Array<Record<string, unknown>> = []
    const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) })
    const metrics = new Metrics({ processMetrics: false })
    const reloader = new CertificateReloader({
      files,
      current: set,
      install: (next) => server.setSecureContext(secureContextOptions(next, policy)),
      logger,
      metrics,
      debounceMs: 100,
      ...extra,
    })
    t.teardown(async () => {
      reloader.close()
      await new Promise((resolve) => server.close(resolve))
    })
    const counter = async (result: 'ok' | 'error'): Promise<number> =>
      (await metrics.tlsReloads.get()).values.find((v) => v.labels.result === result)?.value ?? -1
    const errors = () => logs.filter((l) => l.level === 50)
    return { port: (server.address() as AddressInfo).port, reloader, metrics, logs, errors, counter }
  }

  const liveFiles = async (name: string, cert: IssuedCert): Promise<TlsFiles> => {
    const live = join(dir, name)
    await mkdir(live, { recursive: true })
    const files = { cert: join(live, 'tls.crt'), key: join(live, 'tls.key') }
    await writeFile(files.cert, cert.certPem)
    await writeFile(files.key, cert.keyPem)
    return files
  }

  t.test('reload() installs a replaced pair; open connections keep theirs and keep working', async (t) => {
    const files = await liveFiles('on-demand', a)
    const { port, reloader, metrics, logs, counter } = await rig(t, files)
    t.equal((await probe(port, trust)).serialNumber, a.serialNumber)
    t.equal((await metrics.tlsCertificateExpiry.get()).values[0]?.value, a.notAfter.getTime() / 1000, 'expiry gauge at start')

    const open = connect({ host: '127.0.0.1', port, servername: 'localhost', ...trust })
    await new Promise((resolve) => open.once('secureConnect', resolve))

    await replace(files.cert, b.certPem)
    await replace(files.key, b.keyPem)
    t.equal(await reloader.reload('test'), 'reloaded')
    t.equal((await probe(port, trust)).serialNumber, b.serialNumber, 'a new connection gets the new certificate')
    t.equal(open.getPeerCertificate().serialNumber, a.serialNumber, 'the open connection still has the old one')
    open.write('still here')
    const echo = await new Promise<Buffer>((resolve) => open.once('data', resolve))
    t.equal(echo.toString(), 'still here', 'and still carries data')
    open.end()

    t.equal(await counter('ok'), 1)
    t.equal((await metrics.tlsCertificateExpiry.get()).values[0]?.value, b.notAfter.getTime() / 1000, 'expiry gauge follows')
    t.match(
      logs.find((l) => l.msg === 'tls certificate reloaded'),
      { reason: 'test', serial: b.serialNumber, previousSerial: a.serialNumber },
    )
    t.equal(await reloader.reload('again'), 'unchanged', 'identical files are a no-op')
    t.equal(await counter('ok'), 1)
  })

  t.test('the folder watch reloads after an atomic rename, debounced into one reload', async (t) => {
    const files = await liveFiles('watched', a)
    const { port, reloader, counter, errors } = await rig(t, files)
    await reloader.watch()
    await replace(files.cert, c.certPem)
    await replace(files.key, c.keyPem)
    const ms = await waitForSerial(port, c.serialNumber, trust)
    t.comment(`watch: new connections got the new certificate ${ms} ms after the rename`)
    t.equal(await counter('ok'), 1, 'cert and key renamed back to back: one reload')
    t.same(errors(), [], 'and no error for the moment the cert and key did not match')
  })

  t.test('a stall between the certificate and key renames: no mismatched pair, no error', async (t) => {
    const files = await liveFiles('stalled', a)
    // The re-check of a mismatch found by the watch is far away: only the key's rename resolves it.
    const { port, reloader, errors, logs } = await rig(t, files, { settleMs: 3_600_000 })
    await reloader.watch()
    await replace(files.cert, b.certPem)
    const deadline = Date.now() + 5_000
    const seen = () => logs.some((l) => l.msg === 'tls files not usable yet; checking again shortly' && l.key === 'tls.key')
    while (!seen() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
    t.ok(seen(), 'the watch found the new certificate beside the old key')
    t.equal((await probe(port, trust)).serialNumber, a.serialNumber, 'and kept serving the old pair')
    await replace(files.key, b.keyPem)
    await waitForSerial(port, b.serialNumber, trust)
    t.same(errors(), [], 'no error for the moment in between')
  })

  t.test('a broken replacement keeps the current certificate, logs one error, counts every attempt', async (t) => {
    const files = await liveFiles('broken', a)
    const { port, reloader, counter, errors, logs } = await rig(t, files)
    await reloader.watch()
    await replace(files.key, 'not a key\n')
    const deadline = Date.now() + 5_000
    while (errors().length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
    t.equal(errors().length, 1, 'one error logged')
    t.match(errors()[0], {
      msg: 'tls certificate reload failed; still serving the previous certificate',
      key: 'tls.key',
      file: files.key,
      error: `tls.key (${files.key}): no PEM private key (-----BEGIN PRIVATE KEY-----) found`,
      serial: a.serialNumber,
    })
    t.equal((await probe(port, trust)).serialNumber, a.serialNumber, 'still serving the old certificate')
    t.equal(await reloader.reload('SIGHUP'), 'failed')
    t.equal(errors().length, 1, 'the same problem again is not logged again')
    t.equal(await counter('error'), 2, 'but counted')

    await replace(files.key, d.keyPem)
    t.equal(await reloader.reload('SIGHUP'), 'failed', 'a key of another certificate is refused too')
    t.equal(errors().length, 2, 'a different problem is logged')
    t.match(errors()[1], { key: 'tls.key', error: /does not match the certificate in tls.cert/ })

    await replace(files.key, a.keyPem)
    t.equal(await reloader.reload('SIGHUP'), 'unchanged')
    t.ok(
      logs.some((l) => l.msg === 'tls files are valid again; serving certificate unchanged'),
      'recovery is logged',
    )
    t.equal(await counter('ok'), 0)
  })

  t.test('Kubernetes secret volume: the ..data symlink swap is followed, twice', async (t) => {
    const mount = join(dir, 'k8s')
    const version = async (name: string, cert: IssuedCert): Promise<void> => {
      await mkdir(join(mount, name), { recursive: true })
      await writeFile(join(mount, name, 'tls.crt'), cert.certPem)
      await writeFile(join(mount, name, 'tls.key'), cert.keyPem)
    }
    // What the kubelet's atomic writer does: a new timestamped folder, `..data_tmp` pointing at
    // it renamed over `..data`, then the old folder removed.
    const swap = async (from: string, to: string, cert: IssuedCert): Promise<void> => {
      await version(to, cert)
      await symlink(to, join(mount, '..data_tmp'))
      await rename(join(mount, '..data_tmp'), join(mount, '..data'))
      await rm(join(mount, from), { recursive: true })
    }
    await version('..2026_01', a)
    await symlink('..2026_01', join(mount, '..data'))
    await symlink('..data/tls.crt', join(mount, 'tls.crt'))
    await symlink('..data/tls.key', join(mount, 'tls.key'))
    const { port, reloader, errors } = await rig(t, { cert: join(mount, 'tls.crt'), key: join(mount, 'tls.key') })
    await reloader.watch()

    await swap('..2026_01', '..2026_02', d)
    await waitForSerial(port, d.serialNumber, trust)
    await swap('..2026_02', '..2026_03', e)
    await waitForSerial(port, e.serialNumber, trust)
    t.same(errors(), [])
    t.equal(await readFile(join(mount, 'tls.crt'), 'utf8'), e.certPem)
  })
}
