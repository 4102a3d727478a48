// TLS client probes for tests: which certificate a new connection is served, and polling until
// a rotation shows. Connections are opened fresh each time, so they see the server's current
// secure context.
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'

export interface Probe {
  serialNumber: string
  alpnProtocol: string | false
  protocol: string | null
}

/** Opens one TLS connection, reads the served certificate's serial and the negotiated protocols. */
export function probe(port: number, options: ConnectionOptions = {}): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      const result = {
        serialNumber: socket.getPeerCertificate().serialNumber,
        alpnProtocol: socket.alpnProtocol ?? false,
        protocol: socket.getProtocol(),
      }
      socket.end()
      resolve(result)
    })
    socket.once('error', reject)
    socket.setTimeout(5_000, () => socket.destroy(new Error('TLS probe timed out')))
  })
}

/** Probes until a new connection is served `serialNumber`; rejects with the last serial seen. */
export async function waitForSerial(
  port: number,
  serialNumber: string,
  options: ConnectionOptions = {},
  timeoutMs = 10_000,
): Promise<number> {
  const started = Date.now()
  let last = ''
  while (Date.now() - started < timeoutMs) {
    last = (await probe(port, options)).serialNumber
    if (last === serialNumber) return Date.now() - started
    await sleep(50)
  }
  throw new Error(`new connections still get serial ${last} after ${timeoutMs} ms, expected ${serialNumber}`)
}
