// Peer traffic with TLS on: replicas advertise https://<pod IP>:5000, an address their shared
// certificate does not name. With coordination.peer.serverName (a name the certificate holds) and
// peer.caPath (its CA) a follower checks the holder's certificate against that name and streams
// the fill; without them the same request is refused as any TLS client would refuse it.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { followPeer, peerFillsPath } from '../../src/coordination/peer-client.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'

const skip = pkiUnavailable()
if (skip) t.plan(0, skip)
else await main()

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-peer-tls-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const ca = await makeCa(dir)
  // The Service's name, as the nodes' hosts.toml uses it; not the pod IP the replicas advertise.
  const cert = await issueServerCert(ca, { cn: 'ferry.registry.svc', sans: ['ferry.registry.svc'] })
  const body = Buffer.from('the fill')
  const server = createServer({ cert: await readFile(cert.fullChainPath), key: await readFile(cert.keyPath) }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x')
    if (url.pathname !== peerFillsPath || req.headers.authorization !== 'Bearer token') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'x-ferry-blob-size': String(body.length), 'content-length': String(body.length) }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const holder = { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'token' }
  const caPem = Buffer.from(ca.certPem)

  t.test('with the name the certificate holds and its CA, the fill streams', async (t) => {
    const fill = await followPeer(holder, 'k', 0, 10_000, { serverName: 'ferry.registry.svc', ca: caPem })
    t.equal(fill?.size, body.length)
    const chunks: Buffer[] = []
    for await (const chunk of fill!.stream) chunks.push(chunk as Buffer)
    t.same(Buffer.concat(chunks), body)
  })

  t.test('without the name, the pod IP does not match the certificate: refused', async (t) => {
    await t.rejects(followPeer(holder, 'k', 0, 10_000, { ca: caPem }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' })
  })

  t.test('without the CA, the certificate is not trusted: refused', async (t) => {
    await t.rejects(followPeer(holder, 'k', 0, 10_000, { serverName: 'ferry.registry.svc' }))
  })
}
