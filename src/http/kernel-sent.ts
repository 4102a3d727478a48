// Bytes the kernel sent on a socket with sendfile(2) (send-file.ts): Node's socket.bytesWritten
// never sees them, so the access log and ferry_http_sent_bytes_total add them from here
// (request-observer.ts).
import type { Socket } from 'node:net'

const bySocket = new WeakMap<Socket, number>()

export function countKernelSent(socket: Socket, bytes: number): void {
  bySocket.set(socket, (bySocket.get(socket) ?? 0) + bytes)
}

/** Cumulative over the socket's life, like socket.bytesWritten. */
export function kernelSent(socket: Socket): number {
  return bySocket.get(socket) ?? 0
}
