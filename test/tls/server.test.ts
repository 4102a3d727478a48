// startServer with TLS, in process: HTTPS with HTTP/2 and HTTP/1.1 on one port, the TLS version
// floor, mTLS, intermediate chains, plain HTTP with a warning, reload(), and a graceful shutdown
// that lets an HTTP/2 download finish. Certificates come from a private CA made by openssl.
import { createHash, randomBytes } from 'node:crypto'
import { copyFile, mkdir, mkdtemp, rename, rm } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { get as getHttps } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/observability/logger.js'
import { startServer, type RunningServer } from '../../src/app/server.js'
import { h2Headers, h2Request, h2Session, h2Stream } from '../helpers/h2.js'
import { eventually } from '../helpers/eventually.js'
import { httpsRequest } from '../helpers/https.js'
import { issueClientCert, issueServerCert, makeCa, makeIntermediateCa, pkiUnavailable, type IssuedCert } from '../helpers/pki.js'
import { probe } from '../helpers/tls-client.js'
import { basicAuthorization, writeTlsFerryConfig, type Credentials } from '../helpers/tls-ferry.js'

const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `tls server tests skipped: ${why}`)
} else {
  await main()
}

interface Running {
  server: RunningServer
  port: number
  origin: string
  logs: Array<Record<string, unknown>>
  auth: Record<string, string>
  credentials: Credentials | undefined
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`

async function main(): Promise<void> {
  const pki = await mkdtemp(join(tmpdir(), 'ferry-tls-server-'))
  t.teardown(() => rm(pki, { recursive: true, force: true }))
  const ca = await makeCa(join(pki, 'ca'))
  const otherCa = await makeCa(join(pki, 'other-ca'), { cn: 'Someone Else CA' })
  const intermediate = await makeIntermediateCa(ca, join(pki, 'intermediate'))
  const a = await issueServerCert(ca, { cn: 'server-a', name: 'a' })
  const b = await issueServerCert(ca, { cn: 'server-b', name: 'b' })
  const chained = await issueServerCert(intermediate, { cn: 'chained', name: 'chained' })
  const client = await issueClientCert(ca, { cn: 'client', name: 'client' })
  const stranger = await issueClientCert(otherCa, { cn: 'stranger', name: 'stranger' })
  const trust = { ca: ca.certPem }
  let instances = 0

  const start = async (t: Test, tls: Record<string, unknown>, shutdownTimeout = '10s'): Promise<Running> => {
    const dir = join(pki, `instance-${++instances}`)
    await mkdir(dir)
    const { file, credentials } = await writeTlsFerryConfig(dir, tls, { http: { shutdownTimeout } })
    const logs: Array<Record<string, unknown>> = []
    const logger = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) })
    const server = await startServer(await loadConfig({ file }), logger)
    t.teardown(() => server.close())
    const url = new URL(server.url)
    return { server, port: Number(url.port), origin: server.url, logs, auth: basicAuthorization(credentials), credentials }
  }
  // HTTP/2 on unless a case says otherwise: most cases here check both protocols.
  const serving = (cert: IssuedCert, extra: Record<string, unknown> = {}) => ({
    cert: cert.certPath,
    key: cert.keyPath,
    http2: true,
    ...extra,
  })

  t.test('HTTPS: HTTP/2 by ALPN and HTTP/1.1 on the same port', async (t) => {
    const { server, port, origin, logs, auth } = await start(t, serving(a))
    t.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/)
    t.match(
      logs.find((l) => l.msg === 'tls enabled'),
      { serial: a.serialNumber, http2: true, minVersion: 'TLSv1.2', clientCertificates: 'not requested' },
    )
    t.notOk(
      logs.some((l) => l.level === 40),
      'no warning',
    )

    const h2 = await h2Request(origin, '/v2/', { headers: auth, session: trust })
    t.equal(h2.status, 200, 'GET /v2/ over HTTP/2')
    t.equal(h2.headers['docker-distribution-api-version'], 'registry/2.0')
    const h1 = await httpsRequest(`${origin}/v2/`, { ...trust, headers: auth })
    t.equal(h1.status, 200, 'GET /v2/ over HTTP/1.1')
    t.equal(h1.httpVersion, '1.1')

    t.equal((await probe(port, { ...trust, ALPNProtocols: ['h2', 'http/1.1'] })).alpnProtocol, 'h2')
    t.equal((await probe(port, { ...trust, ALPNProtocols: ['http/1.1'] })).alpnProtocol, 'http/1.1')
    const metrics = (await httpsRequest(`${origin}/metrics`, { ...trust, headers: auth })).body.toString()
    t.match(metrics, `ferry_tls_certificate_expiry_seconds ${a.notAfter.getTime() / 1000}\n`, 'the expiry gauge shows notAfter')
    t.match(metrics, 'ferry_tls_reload_total{result="error"} 0', 'reload counters start at 0')
  })

  t.test('blobs over HTTP/2: push and pull byte-exact, refusals keep the session, logs count bytes', async (t) => {
    const { origin, logs, auth } = await start(t, serving(a))
    const session = await h2Session(origin, trust)
    t.teardown(() => session.close())
    const blob = randomBytes(3 * 1024 * 1024 + 17)
    const digest = sha256(blob)
    const pushed = await h2Request(session, `/v2/tls/h2/blobs/uploads/?digest=${digest}`, {
      headers: { ':method': 'POST', 'content-type': 'application/octet-stream', 'content-length': String(blob.length), ...auth },
      body: blob,
    })
    t.equal(pushed.status, 201, `monolithic upload over HTTP/2 (${pushed.body.toString().slice(0, 200)})`)

    const pulled = await h2Request(session, `/v2/tls/h2/blobs/${digest}`)
    t.equal(pulled.status, 200)
    t.equal(sha256(pulled.body), digest, 'pulled bytes hash to the digest')
    const line = logs.find((l) => l.msg === 'request' && l.method === 'GET' && l.route === 'blob')
    t.ok(Number(line?.bytesSent) >= blob.length, `the request log counts bytes sent over HTTP/2 (${String(line?.bytesSent)})`)
    t.equal(line?.remote, '127.0.0.1', 'and the client address')

    const tooLarge = await h2Request(session, '/v2/tls/h2/manifests/big', {
      headers: { ':method': 'PUT', 'content-type': 'application/vnd.oci.image.manifest.v1+json', ...auth },
      body: Buffer.alloc(5 * 1024 * 1024, 0x20),
    })
    t.equal(tooLarge.status, 413, 'an oversized manifest is refused over HTTP/2')
    t.equal((await h2Request(session, '/v2/', { headers: auth })).status, 200, 'and the session goes on')
    const h1 = await httpsRequest(`${origin}/v2/tls/h2/blobs/${digest}`, trust)
    t.equal(sha256(h1.body), digest, 'the same blob over HTTP/1.1')
  })

  // Over TLS a download holds 2 blocks at once, not 3 (send-lent.ts): 16 TLS downloads peaked
  // at 170-182 MiB with 3 (#18). A client that does not read yet lets the sender fill its pipeline.
  t.test('a download over TLS holds at most 2 blocks while its client does not read', async (t) => {
    const { origin, auth } = await start(t, serving(a))
    const session = await h2Session(origin, trust)
    t.teardown(() => session.close())
    const blob = randomBytes(8 * 1024 * 1024 + 5)
    const digest = sha256(blob)
    const pushed = await h2Request(session, `/v2/tls/held/blobs/uploads/?digest=${digest}`, {
      headers: { ':method': 'POST', 'content-type': 'application/octet-stream', 'content-length': String(blob.length), ...auth },
      body: blob,
    })
    t.equal(pushed.status, 201)
    const blockMemory = async (kind: string): Promise<number> => {
      const text = (await httpsRequest(`${origin}/metrics`, { ...trust, headers: auth })).body.toString()
      return Number(new RegExp(`^ferry_blob_block_memory_bytes\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
    }
    const stream = h2Stream(session, `/v2/tls/held/blobs/${digest}`)
    stream.pause()
    t.equal((await h2Headers(stream))[':status'], 200)
    // The sender has read ahead as far as it may while nothing leaves the client's window.
    await eventually(async () => (await blockMemory('held')) >= 2 * 1024 * 1024, { message: 'the sender read ahead' })
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.resume()
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve)
      stream.once('error', reject)
    })
    t.equal(sha256(Buffer.concat(chunks)), digest, 'the whole blob arrived')
    t.equal(await blockMemory('peak'), 2 * 1024 * 1024, 'never more than 2 blocks of 1 MiB')
  })

  t.test('tls.http2: false, and the default, serve HTTP/1.1 only', async (t) => {
    for (const tls of [serving(a, { http2: false }), { cert: a.certPath, key: a.keyPath }]) {
      const { port, origin, auth, logs } = await start(t, tls)
      t.equal((await probe(port, { ...trust, ALPNProtocols: ['h2', 'http/1.1'] })).alpnProtocol, 'http/1.1')
      t.equal((await httpsRequest(`${origin}/v2/`, { ...trust, headers: auth })).status, 200)
      t.match(
        logs.find((l) => l.msg === 'tls enabled'),
        { http2: false },
      )
    }
  })

  t.test('TLS 1.2 is the floor by default; minVersion TLSv1.3 refuses 1.2 clients', async (t) => {
    const open = await start(t, serving(a))
    t.equal((await probe(open.port, { ...trust, maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2')
    t.equal((await probe(open.port, trust)).protocol, 'TLSv1.3')
    await t.rejects(
      probe(open.port, { ...trust, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
      'TLS 1.1 is refused',
    )

    const strict = await start(t, serving(a, { minVersion: 'TLSv1.3' }))
    await t.rejects(probe(strict.port, { ...trust, maxVersion: 'TLSv1.2' }), 'a TLS 1.2 client is refused')
    t.equal((await probe(strict.port, trust)).protocol, 'TLSv1.3')
  })

  t.test('mTLS: no client certificate, or one from another CA, is refused; one from the CA works', async (t) => {
    const { origin, logs, auth } = await start(t, serving(a, { clientCa: ca.certPath }))
    t.match(
      logs.find((l) => l.msg === 'tls enabled'),
      { clientCertificates: 'required' },
    )
    await t.rejects(httpsRequest(`${origin}/v2/`, trust), 'no client certificate')
    await t.rejects(
      httpsRequest(`${origin}/v2/`, { ...trust, cert: stranger.certPem, key: stranger.keyPem }),
      'a certificate from another CA',
    )
    await t.rejects(h2Request(origin, '/v2/', { session: trust }), 'HTTP/2 without a certificate')
    const mine = { ...trust, cert: client.certPem, key: client.keyPem }
    t.equal((await httpsRequest(`${origin}/v2/`, { ...mine, headers: auth })).status, 200, 'HTTP/1.1 with a client certificate')
    t.equal((await h2Request(origin, '/v2/', { headers: auth, session: mine })).status, 200, 'HTTP/2 with a client certificate')
  })

  t.test('a chain file: clients that trust only the root verify a certificate from an intermediate', async (t) => {
    const { port, origin, auth } = await start(t, serving(chained, { cert: chained.fullChainPath }))
    t.equal((await httpsRequest(`${origin}/v2/`, { ...trust, headers: auth })).status, 200)
    t.equal((await probe(port, trust)).serialNumber, chained.serialNumber)
  })

  t.test('no certificate: plain HTTP and a warning', async (t) => {
    const { server, logs, auth } = await start(t, {})
    t.match(server.url, /^http:\/\//)
    t.match(
      logs.find((l) => l.level === 40),
      { msg: /^TLS is off: serving plain HTTP/ },
    )
    t.equal((await fetch(`${server.url}/healthz`)).status, 200)
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: auth })).text()
    t.notMatch(metrics, 'ferry_tls_certificate_expiry_seconds', 'no expiry gauge without a certificate (an alert on it must not fire)')
  })

  t.test('a bad certificate stops start-up naming the key and the file', async (t) => {
    const dir = join(pki, 'bad-start')
    await mkdir(dir)
    const { file } = await writeTlsFerryConfig(dir, { cert: a.certPath, key: b.keyPath })
    const logger = createLogger('silent')
    await t.rejects(startServer(await loadConfig({ file }), logger), {
      name: 'StartupError',
      setting: 'tls.key',
      message: /^cannot serve HTTPS: tls.key .*does not match the certificate/,
      cause: { name: 'TlsFileError', configKey: 'tls.key', file: b.keyPath },
    })
  })

  t.test('reload() gives new connections the replaced certificate', async (t) => {
    const live = join(pki, 'reload-live')
    await mkdir(live)
    await copyFile(a.certPath, join(live, 'tls.crt'))
    await copyFile(a.keyPath, join(live, 'tls.key'))
    const { server, port, logs } = await start(t, { cert: join(live, 'tls.crt'), key: join(live, 'tls.key') })
    t.equal((await probe(port, trust)).serialNumber, a.serialNumber)
    await copyFile(b.certPath, join(live, 'tls.crt.new'))
    await copyFile(b.keyPath, join(live, 'tls.key.new'))
    await rename(join(live, 'tls.crt.new'), join(live, 'tls.crt'))
    await rename(join(live, 'tls.key.new'), join(live, 'tls.key'))
    await server.reload()
    t.equal((await probe(port, trust)).serialNumber, b.serialNumber)
    t.ok(logs.some((l) => l.msg === 'tls certificate reloaded' && l.serial === b.serialNumber))
  })

  t.test('close(): an HTTP/2 download in flight finishes, idle sessions are sent away', async (t) => {
    const { server, origin, auth } = await start(t, serving(a))
    const blob = randomBytes(16 * 1024 * 1024)
    const digest = sha256(blob)
    const pushed = await h2Request(origin, `/v2/tls/close/blobs/uploads/?digest=${digest}`, {
      headers: { ':method': 'POST', 'content-length': String(blob.length), ...auth },
      body: blob,
      session: trust,
    })
    t.equal(pushed.status, 201)
    const downloading = await h2Session(origin, trust)
    const idle = await h2Session(origin, trust)
    const idleClosed = new Promise<void>((resolve) => idle.once('close', resolve))
    const stream = h2Stream(downloading, `/v2/tls/close/blobs/${digest}`)
    const chunks: Buffer[] = []
    let received = 0
    let holding = true
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
      if (holding && received > 1024 * 1024) stream.pause()
    })
    const ended = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve)
      stream.once('error', reject)
    })
    t.equal((await h2Headers(stream))[':status'], 200)
    while (received <= 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 10))

    const started = Date.now()
    let closed = false
    const closing = server.close().then(() => void (closed = true))
    await idleClosed
    t.pass(`the idle session was closed by the server (${Date.now() - started} ms)`)
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.notOk(closed, 'close() waits for the download')
    holding = false
    stream.resume()
    await ended
    t.equal(sha256(Buffer.concat(chunks)), digest, 'the download completed with the right bytes')
    await closing
    t.ok(Date.now() - started < 8_000, `close() finished once the download did (${Date.now() - started} ms), before the 10 s deadline`)
    downloading.close()
  })

  t.test('close(): past http.shutdownTimeout, held HTTP/1.1 and HTTP/2 downloads are cut', async (t) => {
    const { server, origin, auth } = await start(t, serving(a), '500ms')
    const blob = randomBytes(16 * 1024 * 1024)
    const digest = sha256(blob)
    const pushed = await h2Request(origin, `/v2/tls/cut/blobs/uploads/?digest=${digest}`, {
      headers: { ':method': 'POST', 'content-length': String(blob.length), ...auth },
      body: blob,
      session: trust,
    })
    t.equal(pushed.status, 201)
    const session = await h2Session(origin, trust)
    const h2 = h2Stream(session, `/v2/tls/cut/blobs/${digest}`)
    t.equal((await h2Headers(h2))[':status'], 200)
    const h1 = await new Promise<IncomingMessage>((resolve, reject) => {
      getHttps(`${origin}/v2/tls/cut/blobs/${digest}`, { agent: false, servername: 'localhost', ...trust }, resolve).once('error', reject)
    })
    t.equal(h1.statusCode, 200)
    /** 'completed' when the whole body arrived, 'cut' when the stream ended without it. */
    const outcome = (stream: NodeJS.ReadableStream & { pause(): void }): Promise<string> => {
      stream.pause()
      let bytes = 0
      // A paused client does not read, so it only notices the cut once it reads again.
      void released.then(() => stream.on('data', (chunk: Buffer) => void (bytes += chunk.length)).resume())
      return new Promise((resolve) => {
        const settle = (): void => resolve(bytes === blob.length ? 'completed' : 'cut')
        stream.once('end', settle)
        stream.once('error', settle)
        stream.once('close', settle)
      })
    }
    let release: () => void = () => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    const h2Ended = outcome(h2)
    const h1Ended = outcome(h1)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const started = Date.now()
    await server.close()
    const ms = Date.now() - started
    t.ok(ms >= 450 && ms < 3_000, `close() returned at the deadline (${ms} ms)`)
    release()
    t.equal(await h2Ended, 'cut', 'the held HTTP/2 download was cut')
    t.equal(await h1Ended, 'cut', 'the held HTTP/1.1 download was cut')
    session.destroy()
  })
}
