// Live certificate rotation on a real `ferry serve` process while downloads are in flight.
// A 64 MiB blob is pushed over HTTPS, then downloaded over HTTP/1.1 and HTTP/2 by clients that
// read a few MiB and stop (backpressure holds the rest in Ferry). Meanwhile the certificate is
// replaced three times: by SIGHUP alone (a change the folder watch cannot see), by atomic rename
// alone (the folder watch), and by a broken key. New connections must see each good certificate's
// serial; the held downloads must keep their original certificate and complete byte-exact; the
// broken key must leave the last good certificate in service with one error log line and the
// error metric counting. Nothing waits a fixed time: each step polls for what it expects.
import { createHash, type Hash } from 'node:crypto'
import { copyFile, link, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { request as httpsGet } from 'node:https'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { h2Headers, h2Session, h2Stream } from '../helpers/h2.js'
import { httpsRequest } from '../helpers/https.js'
import { issueServerCert, makeCa, pkiUnavailable, type IssuedCert } from '../helpers/pki.js'
import { PseudoRandomSource, pseudoRandomDigest } from '../helpers/pseudo-random.js'
import { probe, waitForSerial } from '../helpers/tls-client.js'
import { basicAuthorization, writeTlsFerryConfig } from '../helpers/tls-ferry.js'

const MiB = 1024 * 1024
const size = 64 * MiB
const held = 4 * MiB

const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `tls rotation e2e skipped: ${why}`)
} else {
  // One subtest: tap ends a root test that asserted and then waits on I/O.
  t.test('certificate rotation while downloads are in flight', main)
}

/** A download that reads `held` bytes, then stops reading until released. */
interface HeldDownload {
  serialNumber(): string
  release(): void
  /** Resolves with the digest and length of everything received. */
  done: Promise<{ digest: string; bytes: number }>
}

function holdStream(
  body: NodeJS.ReadableStream & { pause(): void; resume(): void },
  hash: Hash,
): Omit<HeldDownload, 'serialNumber'> & { reachedHold: Promise<void> } {
  let bytes = 0
  let holding = true
  let reached: () => void = () => {}
  const reachedHold = new Promise<void>((resolve) => (reached = resolve))
  body.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    bytes += chunk.length
    if (holding && bytes >= held) {
      body.pause()
      reached()
    }
  })
  const done = new Promise<{ digest: string; bytes: number }>((resolve, reject) => {
    body.once('end', () => resolve({ digest: `sha256:${hash.digest('hex')}`, bytes }))
    body.once('error', reject)
  })
  return { reachedHold, done, release: () => ((holding = false), body.resume()) }
}

async function main(t: Test): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-tls-rotation-'))
  let ferry: FerryProcess | undefined
  const agents: Agent[] = []
  t.teardown(async () => {
    if (ferry && !t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-8000)}`)
    await Promise.all(agents.map((a) => a.close()))
    await ferry?.stop()
    await rm(work, { recursive: true, force: true })
  })

  const ca = await makeCa(join(work, 'pki'))
  const [a, b, c] = [
    await issueServerCert(ca, { cn: 'ferry-a', name: 'a' }),
    await issueServerCert(ca, { cn: 'ferry-b', name: 'b' }),
    await issueServerCert(ca, { cn: 'ferry-c', name: 'c' }),
  ]
  const trust = { ca: ca.certPem }
  const live = join(work, 'live')
  await mkdir(live)
  const certFile = join(live, 'tls.crt')
  const keyFile = join(live, 'tls.key')
  /** Replaces the live pair as rotation tools do: temp files renamed over the old ones. */
  const install = async (cert: IssuedCert): Promise<void> => {
    await copyFile(cert.certPath, `${certFile}.tmp`)
    await copyFile(cert.keyPath, `${keyFile}.tmp`)
    await rename(`${certFile}.tmp`, certFile)
    await rename(`${keyFile}.tmp`, keyFile)
  }
  // At first the live files are hard links into a folder Ferry does not watch: rewriting them
  // there changes what the live paths hold without any event in the live folder, so only a
  // SIGHUP can bring that change in (the watch would otherwise race the signal).
  const hidden = join(work, 'hidden')
  await mkdir(hidden)
  await copyFile(a.certPath, join(hidden, 'tls.crt'))
  await copyFile(a.keyPath, join(hidden, 'tls.key'))
  await link(join(hidden, 'tls.crt'), certFile)
  await link(join(hidden, 'tls.key'), keyFile)

  const config = await writeTlsFerryConfig(work, { http2: true })
  const auth = basicAuthorization(config.credentials)
  ferry = await startFerryProcess(['serve', '--config', config.file, '--log-level', 'info', '--tls-cert', certFile, '--tls-key', keyFile])
  const { url, pid } = ferry
  const port = Number(new URL(url).port)
  const logs = (): Array<Record<string, unknown>> =>
    ferry!
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  const metric = async (line: string): Promise<number | undefined> => {
    const text = (await httpsRequest(`${url}/metrics`, { ...trust, headers: auth })).body.toString()
    const match = text.split('\n').find((l) => l.startsWith(`${line} `))
    return match === undefined ? undefined : Number(match.slice(line.length + 1))
  }

  /** Waits until a request made now has its access-log line read: every line logged before it is read too. */
  const logMarker = async (): Promise<void> => {
    const repo = `marker/m${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`
    await httpsRequest(`${url}/v2/${repo}/tags/list`, { ...trust, headers: auth })
    await eventually(() => logs().some((l) => l.msg === 'request' && l.repo === repo), { message: 'the marker request logged' })
  }

  // ---- a 64 MiB blob pushed over HTTPS -------------------------------------------------------
  const repo = 'tls/rotation'
  const seed = 'ferry-tls-rotation'
  const digest = pseudoRandomDigest(seed, size)
  const agent = new Agent({ connect: trust })
  agents.push(agent)
  const pushed = await request(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    dispatcher: agent,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), ...auth },
    body: new PseudoRandomSource(seed).stream(size),
  })
  const pushText = await pushed.body.text()
  t.equal(pushed.statusCode, 201, `64 MiB blob pushed over HTTPS (${pushText.slice(0, 200)})`)
  t.equal((await probe(port, trust)).serialNumber, a.serialNumber, 'serving certificate A')

  // ---- two downloads that stop reading after 4 MiB -------------------------------------------
  const h1Response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpsGet(`${url}/v2/${repo}/blobs/${digest}`, { agent: false, servername: 'localhost', ...trust }, resolve)
    req.once('error', reject)
    req.end()
  })
  t.equal(h1Response.statusCode, 200, 'HTTP/1.1 download started')
  const h1Socket = h1Response.socket as TLSSocket
  const h1 = holdStream(h1Response, createHash('sha256'))
  const session = await h2Session(url, trust)
  const h2Body = h2Stream(session, `/v2/${repo}/blobs/${digest}`)
  const h2 = holdStream(h2Body, createHash('sha256'))
  t.equal((await h2Headers(h2Body))[':status'], 200, 'HTTP/2 download started')
  await Promise.all([h1.reachedHold, h2.reachedHold])
  const inFlightSerials = (): string[] => [
    h1Socket.getPeerCertificate().serialNumber,
    (session.socket as TLSSocket).getPeerCertificate().serialNumber,
  ]
  t.same(inFlightSerials(), [a.serialNumber, a.serialNumber], 'both downloads hold connections with certificate A')

  // ---- rotation 1: SIGHUP alone --------------------------------------------------------------
  await writeFile(join(hidden, 'tls.crt'), await readFile(b.certPath))
  await writeFile(join(hidden, 'tls.key'), await readFile(b.keyPath))
  const signalled = Date.now()
  process.kill(pid, 'SIGHUP')
  await waitForSerial(port, b.serialNumber, trust)
  const sighupMs = Date.now() - signalled
  t.pass(`after SIGHUP a new connection gets certificate B (${sighupMs} ms)`)
  t.match(
    await eventually(() => logs().find((l) => l.msg === 'tls certificate reloaded' && l.serial === b.serialNumber)),
    { reason: 'SIGHUP', previousSerial: a.serialNumber },
    'logged as a SIGHUP reload from A to B',
  )

  // ---- rotation 2: rename only; the folder watch reloads -------------------------------------
  const renamed = Date.now()
  await install(c)
  await waitForSerial(port, c.serialNumber, trust)
  const watchMs = Date.now() - renamed
  t.pass(`without a signal, the watch gave new connections certificate C (${watchMs} ms after the rename)`)
  t.match(
    await eventually(() => logs().find((l) => l.msg === 'tls certificate reloaded' && l.serial === c.serialNumber)),
    { reason: 'file change', previousSerial: b.serialNumber },
    'logged as a file-change reload from B to C',
  )
  t.equal(await metric('ferry_tls_reload_total{result="ok"}'), 2, 'two successful reloads counted')
  t.equal(await metric('ferry_tls_certificate_expiry_seconds'), c.notAfter.getTime() / 1000, 'the expiry gauge shows certificate C')

  // ---- a broken replacement: garbage key --------------------------------------------------------
  await writeFile(`${keyFile}.tmp`, 'garbage, not a key\n')
  await rename(`${keyFile}.tmp`, keyFile)
  const errorLines = () => logs().filter((l) => l.level === 50)
  await eventually(() => errorLines().length > 0, { message: 'the broken key logged' })
  t.equal(errorLines().length, 1, 'one error logged')
  t.match(
    errorLines()[0],
    { msg: 'tls certificate reload failed; still serving the previous certificate', key: 'tls.key', file: keyFile, serial: c.serialNumber },
    'the error names the key and the file',
  )
  t.equal((await probe(port, trust)).serialNumber, c.serialNumber, 'new connections still get certificate C')
  process.kill(pid, 'SIGHUP')
  await eventually(async () => (await metric('ferry_tls_reload_total{result="error"}')) === 2, { message: 'the SIGHUP reload counted' })
  t.pass('both failed attempts counted')
  // Log lines come in order: once a line written after the SIGHUP reload is read, any error it logged is too.
  await logMarker()
  t.equal(errorLines().length, 1, 'a SIGHUP on the same broken file logs no second error')
  t.equal(await metric('ferry_tls_certificate_expiry_seconds'), c.notAfter.getTime() / 1000, 'the expiry gauge still shows C')

  // ---- the held downloads finish byte-exact on their original connections ---------------------
  t.same(inFlightSerials(), [a.serialNumber, a.serialNumber], 'the downloads still hold certificate A')
  const released = Date.now()
  h1.release()
  h2.release()
  const [h1Done, h2Done] = await Promise.all([h1.done, h2.done])
  t.same(h1Done, { digest, bytes: size }, 'HTTP/1.1 download completed with the right bytes')
  t.same(h2Done, { digest, bytes: size }, 'HTTP/2 download completed with the right bytes')
  t.comment(
    `downloads held ${Math.round((released - signalled) / 100) / 10} s across three rotations, then finished in ${Date.now() - released} ms`,
  )
  session.close()
}
