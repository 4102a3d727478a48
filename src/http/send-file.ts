// Sends a stored blob over plain HTTP/1.1 with sendfile(2) (native-sendfile.ts): the kernel
// copies it from the page cache to the socket, so a download costs neither JavaScript buffers
// nor a read and a write per chunk (a third of the CPU per GiB of reading through Node, and no
// memory per download). TLS, HTTP/2 and sources that are not local files use send-pulled.ts.
//
// Node's HTTP layer writes the status line and headers; this module waits until they have left
// for the kernel, lets the helper send the body on the same connection, and ends the response
// (keep-alive goes on as after any response). A transfer that fails or falls short destroys the
// connection, so a client never sees a short 200.
import { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import type { Readable } from 'node:stream'
import type { FileDescriptorSource } from '../core/pull-source.js'
import type { NativeSendfile } from './native-sendfile.js'

/** The socket's descriptor when sendfile can write to it: plain TCP under HTTP/1.1. */
export function sendfileSocket(reply: FastifyReply): number | undefined {
  const res = reply.raw
  if (!(res instanceof ServerResponse)) return undefined // HTTP/2
  const socket = res.socket
  if (!socket || socket instanceof TLSSocket || socket.destroyed) return undefined
  const fd = (socket as Socket & { _handle?: { fd?: unknown } })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

/** Sends bytes `start`..`start + length` of the file behind `body` as the reply's body. */
export async function sendFileRange(reply: FastifyReply, native: NativeSendfile, body: Readable & FileDescriptorSource, start: number, length: number): Promise<void> {
  reply.hijack()
  const res = reply.raw as ServerResponse
  const socket = res.socket as Socket
  let cancel = (): void => {}
  const onClose = (): void => cancel()
  res.once('close', onClose)
  // Node sees no writes while the kernel sends: its idle timer would cut a long download, so
  // the helper watches for a stalled client itself, with the same limit.
  const idleTimeout = socket.timeout ?? 0
  socket.setTimeout(0)
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
    res.flushHeaders()
    await headersWritten(socket)
    if (socket.destroyed) return // the client left before the body started
    const { error, sent } = await new Promise<{ error: string | null; sent: number }>((resolve) => {
      const transfer = native.start(sendfileSocket(reply) ?? -1, body.fd, start, length, idleTimeout, (error, sent) => resolve({ error, sent }))
      cancel = () => transfer.cancel()
    })
    if (error !== null || sent !== length) {
      if (!socket.destroyed) reply.log.warn({ error, sent, length }, 'blob download failed midway')
      res.destroy(new Error(error ?? `sent ${sent} of ${length} bytes`))
      return
    }
    res.end()
  } catch (err) {
    reply.log.warn({ err }, 'blob download failed midway')
    res.destroy(err instanceof Error ? err : new Error('blob download failed'))
  } finally {
    if (!socket.destroyed) socket.setTimeout(idleTimeout)
    res.removeListener('close', onClose)
    body.destroy()
  }
}

/**
 * Resolves once the status line and headers are in the kernel: nothing left in the socket's
 * stream buffer nor in libuv's write queue, so the body cannot overtake them.
 */
async function headersWritten(socket: Socket): Promise<void> {
  const handle = (socket as Socket & { _handle?: { writeQueueSize?: number } })._handle
  while (!socket.destroyed && (socket.writableLength > 0 || (handle?.writeQueueSize ?? 0) > 0)) {
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}
