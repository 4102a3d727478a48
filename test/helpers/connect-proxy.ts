// A small HTTP CONNECT proxy for tests: every tunnel is recorded (target host:port and the
// Proxy-Authorization it was asked with), optionally refused with 407 unless the expected
// credentials come along, and then spliced byte for byte to the target.
import { createServer, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'

export interface Tunnel {
  /** host:port as the CONNECT line named it. */
  target: string
  proxyAuthorization: string | undefined
  /** Whether the proxy let it through. */
  allowed: boolean
}

export interface ConnectProxy {
  /** http://127.0.0.1:PORT */
  url: string
  port: number
  tunnels(): Tunnel[]
  close(): Promise<void>
}

export async function startConnectProxy(options: { credentials?: { username: string; password: string } } = {}): Promise<ConnectProxy> {
  const tunnels: Tunnel[] = []
  const sockets = new Set<Socket>()
  const expected =
    options.credentials && `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`
  const server = createServer((_req, res) => {
    res.writeHead(405, { connection: 'close' }).end('this proxy only tunnels (CONNECT)\n')
  })
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    sockets.add(client)
    client.once('close', () => sockets.delete(client))
    client.on('error', () => client.destroy())
    const proxyAuthorization = req.headers['proxy-authorization']
    const target = req.url ?? ''
    const allowed = expected === undefined || proxyAuthorization === expected
    tunnels.push({ target, proxyAuthorization, allowed })
    if (!allowed) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n')
      return
    }
    const [host, port] = splitHostPort(target)
    const upstream = connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    sockets.add(upstream)
    upstream.once('close', () => {
      sockets.delete(upstream)
      client.destroy()
    })
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n'))
    client.once('close', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    tunnels: () => [...tunnels],
    async close() {
      for (const socket of sockets) socket.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

function splitHostPort(target: string): [string, number] {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target)
  return match ? [match[1]!, Number(match[2])] : [target, 443]
}
