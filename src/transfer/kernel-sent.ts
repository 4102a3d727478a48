// Bytes the kernel sent on a socket with sendfile(2) (send-file.ts): Node's socket.bytesWritten
// never sees them, so the access log and ferry_http_sent_bytes_total add them from here
// (http/request-observer.ts).
import type { Socket } from 'node:net'

export class KernelSentBytes {
  readonly #bySocket = new WeakMap<Socket, number>()

  add(socket: Socket, bytes: number): void {
    this.#bySocket.set(socket, (this.#bySocket.get(socket) ?? 0) + bytes)
  }

  /** Cumulative over the socket's life, like socket.bytesWritten. */
  of(socket: Socket): number {
    return this.#bySocket.get(socket) ?? 0
  }
}
