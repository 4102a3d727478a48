// Graceful and forced ends for every connection of a server, whatever protocol it speaks.
// node:http's closeAllConnections covers HTTP/1.1 only: before Node 24, server.close() leaves
// HTTP/2 sessions open (idle ones until their timeout), and the HTTP/1.1 fallback connections of
// an HTTP/2 server have no closeAllConnections at all. So sockets and HTTP/2 sessions are tracked
// here from the 'connection', 'secureConnection' and 'session' events. Both the TCP socket and
// its TLS socket are kept: once TLS has taken over the handle, destroying the TCP socket object
// alone no longer closes the connection, and a connection still in its handshake has no TLS
// socket yet.
import type { Http2Session } from 'node:http2'
import type { Server, Socket } from 'node:net'

export interface ConnectionTracker {
  /** HTTP/2: sends GOAWAY, so no new streams start while the streams in flight finish. */
  drainSessions(): void
  /** Cuts every connection still open (the shutdown deadline passed). */
  destroyAll(): void
}

export function trackConnections(server: Server): ConnectionTracker {
  const sockets = new Set<Socket>()
  const sessions = new Set<Http2Session>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  }
  server.on('connection', track)
  server.on('secureConnection', track)
  server.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  return {
    drainSessions() {
      for (const session of sessions) if (!session.closed) session.close()
    },
    destroyAll() {
      for (const session of sessions) session.destroy()
      for (const socket of sockets) socket.destroy()
    },
  }
}
