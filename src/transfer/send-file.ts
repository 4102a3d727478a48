// Sends blob bodies over plain HTTP/1.1 with sendfile(2) (native-sendfile.ts): the kernel
// copies from the page cache to the socket, so a download costs neither JavaScript buffers nor
// a read and a write per chunk (a third of the CPU per GiB of reading through Node, and no
// memory per download). Two bodies go this way: a stored blob's range, and a mirror fill's
// upload file while it is still being written (each transfer sends what is already in the
// file). TLS, HTTP/2 and sources that are not local files use send-lent.ts.
//
// Node's HTTP layer writes the status line and headers; this module waits until they have left
// for the kernel, lets the helper send the body on the same connection, and ends the response
// (keep-alive goes on as after any response). A transfer that fails or falls short destroys the
// connection, so a client never sees a short 200.
//
// A response takes a lane of the helper before anything is written and keeps it to its end (a
// growing file sends many ranges through it). When the helper has no lane to give (its cap is
// reached, or no loop thread could be started) these functions return false with nothing sent,
// and the caller sends the response through JavaScript: a response never changes paths midway.
import { ServerResponse } from 'node:http'
import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { TLSSocket } from 'node:tls'
import type { Readable } from 'node:stream'
import type { FileDescriptorSource, GrowingFileSource, SocketSource } from './body-sources.js'
import type { KernelSentBytes } from './kernel-sent.js'
import { endOfFile, type NativeSendfile, type SendfileLane } from './native-sendfile.js'

/** The socket's descriptor when sendfile can write to it: plain TCP under HTTP/1.1. */
export function sendfileSocket(reply: FastifyReply): number | undefined {
  const res = reply.raw
  // HTTP/2, or a pipelined response still queued behind another (no socket yet).
  if (!(res instanceof ServerResponse)) return undefined
  const socket = res.socket
  if (!socket || socket instanceof TLSSocket || socket.destroyed) return undefined
  const fd = (socket as Socket & { _handle?: { fd?: unknown } })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

/** The helper, and where the bytes it sent are counted. */
export interface Kernel {
  native: NativeSendfile
  sent: KernelSentBytes
}

/** One transfer's outcome: bytes sent, and the error (`endOfFile` when the file was shorter). */
type Transfer = (offset: number, length: number) => Promise<{ error: string | null; sent: number }>

/**
 * Sends bytes `start`..`start + length` of the stored file behind `body` as the reply's body, or
 * returns false (nothing sent) when the helper has no lane for it.
 */
export async function sendFileRange(
  reply: FastifyReply,
  kernel: Kernel,
  body: Readable & FileDescriptorSource,
  start: number,
  length: number,
): Promise<boolean> {
  const lane = openLane(reply, kernel, body.fd)
  if (!lane) return false
  await sendWith(reply, kernel, lane, body, async (transfer) => {
    const { error, sent } = await transfer(start, length)
    if (error !== null || sent !== length)
      throw new ShortBody(error === endOfFile ? `the file ended after ${sent} of ${length} bytes` : (error ?? 'short'))
  })
  return true
}

/**
 * Sends a body that follows a file still being written, or returns false (nothing sent) when
 * its storage has no local file to send from or the helper has no lane for it.
 */
export async function sendGrowingFile(reply: FastifyReply, kernel: Kernel, body: Readable & GrowingFileSource): Promise<boolean> {
  const fd = await body.fileDescriptor()
  if (fd === undefined) return false
  const lane = openLane(reply, kernel, fd)
  if (!lane) return false
  await sendWith(reply, kernel, lane, body, async (transfer) => {
    for (let position = body.start; position < body.end;) {
      const limit = await body.sendableFrom(position)
      const wasGrowing = body.growing
      const { error, sent } = await transfer(position, limit - position)
      position += sent
      if (error === null) continue
      if (error !== endOfFile) throw new ShortBody(error)
      if (sent > 0) continue
      // Received but not yet in the file: the writer is a little behind the network. Once the
      // fill is verified every byte is in the file, so an end of file then is a short file.
      if (!wasGrowing) throw new ShortBody(`the file ended at ${position} of ${body.end}`)
      if (body.growing) await body.nextChange()
    }
  })
  return true
}

/**
 * Sends a body that arrives on a socket of its own (an S3 GET on a plain-HTTP store) by splicing
 * that socket to the reply's, or returns false (nothing sent, the body untouched) when the body
 * cannot give its socket up or the helper has no lane for it. The body's stallMs bounds a source
 * that stops sending as the client's idle timeout bounds a client that stops reading.
 */
export async function sendSocketBody(reply: FastifyReply, kernel: Kernel, body: Readable & SocketSource, length: number): Promise<boolean> {
  const socketFd = sendfileSocket(reply)
  if (socketFd === undefined) return false
  const clientTimeout = reply.raw.socket?.timeout ?? 0
  const stall = clientTimeout > 0 ? Math.min(clientTimeout, body.stallMs) : body.stallMs
  const source = body.takeSocket((fd) => kernel.native.openSplice(socketFd, fd, stall))
  if (!source) return false
  const { taken: lane, head } = source
  if (head.length + source.length !== length) {
    lane.close()
    body.destroy()
    throw new Error(`the store's body has ${head.length + source.length} bytes, not ${length}`)
  }
  await sendWith(reply, kernel, lane, body, async (transfer) => {
    if (head.length > 0) {
      const socket = reply.raw.socket as Socket
      socket.write(head)
      await headersWritten(socket)
    }
    const { error, sent } = await transfer(0, source.length)
    if (error !== null || sent !== source.length)
      throw new ShortBody(
        error === endOfFile ? `the store's connection ended after ${head.length + sent} of ${length} bytes` : (error ?? 'short'),
      )
  })
  return true
}

/** The helper's lane for `fileFd` on the reply's socket, given up after the connection's idle timeout without progress. */
function openLane(reply: FastifyReply, { native }: Kernel, fileFd: number): SendfileLane | undefined {
  const socketFd = sendfileSocket(reply)
  if (socketFd === undefined) return undefined
  return native.open(socketFd, fileFd, reply.raw.socket?.timeout ?? 0)
}

/** The transfer failed or the file was short: the response must break, not end. */
class ShortBody extends Error {}

async function sendWith(
  reply: FastifyReply,
  { sent: kernelSent }: Kernel,
  lane: SendfileLane,
  body: Readable,
  sendBody: (transfer: Transfer) => Promise<void>,
): Promise<void> {
  reply.hijack()
  const res = reply.raw as ServerResponse
  const socket = res.socket as Socket
  // The client left: a running send stops, and the lane lets go of the connection.
  const onClose = (): void => lane.close()
  res.once('close', onClose)
  // Node sees no writes while the kernel sends: its idle timer would cut a long download, so
  // the helper watches for a stalled client itself, with the same limit (given to open()).
  const idleTimeout = socket.timeout ?? 0
  socket.setTimeout(0)
  const transfer: Transfer = (offset, length) =>
    new Promise((resolve, reject) => {
      if (socket.destroyed) return reject(new ClientGone())
      lane.send(offset, length, (error, sent) => {
        kernelSent.add(socket, sent)
        resolve({ error, sent })
      })
    })
  try {
    res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
    res.flushHeaders()
    await headersWritten(socket)
    await sendBody(transfer)
    res.end()
  } catch (err) {
    if (!(err instanceof ClientGone) && !socket.destroyed) reply.log.warn({ err }, 'blob download failed midway')
    res.destroy(err instanceof Error ? err : new Error('blob download failed'))
  } finally {
    lane.close()
    if (!socket.destroyed) socket.setTimeout(idleTimeout)
    res.removeListener('close', onClose)
    body.destroy()
  }
}

/** The client closed the connection: nothing more to send, nothing to report. */
class ClientGone extends Error {}

/**
 * Resolves once the status line and headers are in the kernel: nothing left in the socket's
 * stream buffer nor in libuv's write queue, so the body cannot overtake them.
 */
async function headersWritten(socket: Socket): Promise<void> {
  const handle = (socket as Socket & { _handle?: { writeQueueSize?: number } })._handle
  while (!socket.destroyed && (socket.writableLength > 0 || (handle?.writeQueueSize ?? 0) > 0)) {
    await delay(1)
  }
}
