// Swapping an upstream's transport: a download in flight finishes on the connections it started
// on, new requests take the new transport, and the old one closes once its requests are done.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { HttpTransport } from '../../src/client/http-exchange.js'
import { SwitchableTransport, Transport } from '../../src/client/transport.js'
import { startConnectProxy } from '../helpers/connect-proxy.js'

t.test('a replaced transport lets its download finish; new requests use the new one', async (t) => {
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => (release = resolve))
  const server = createServer((req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-length': '10' })
      res.write('01234')
      void released.then(() => res.end('56789'))
      return
    }
    res.end('fast')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const proxy = await startConnectProxy()
  t.teardown(() => proxy.close())

  const switchable = new SwitchableTransport(new Transport())
  const http = new HttpTransport({}, switchable)
  t.teardown(() => http.close())
  const slow = await http.send({ method: 'GET', url: new URL('/slow', origin), headers: {} })
  let oldClosed = false
  const closing = switchable.replace(new Transport({ proxy: { kind: 'url', url: proxy.url } })).then(() => (oldClosed = true))

  const fast = await http.send({ method: 'GET', url: new URL('/fast', origin), headers: {} })
  t.equal((await fast.read(100)).toString(), 'fast')
  t.equal(proxy.tunnels().length, 1, 'the new request went through the new transport (its proxy)')
  t.notOk(oldClosed, 'the old transport waits for the download in flight')

  release()
  t.equal((await slow.read(100)).toString(), '0123456789', 'the download in flight completed on the old connection')
  await closing
  t.ok(oldClosed, 'then the old transport closed')
})
