// Sends a body that can be pulled into our own buffers (core/pull-source.ts) straight to the
// raw response, double-buffered: the next chunk is read while the previous one is written, and
// a buffer is refilled only once the socket has let go of it (its write callback). The write
// callback is also the backpressure: at most two chunks per response are in memory.
//
// The reply is hijacked, so fastify does not pipe, but its onResponse hooks (access line,
// metrics) still run when the response finishes. A source that ends before `length` bytes (a
// truncated file) or fails destroys the response: the client sees a broken download (HTTP/1.1
// connection closed short of Content-Length, HTTP/2 stream reset), never a short 200.
import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import type { PullSource } from '../core/pull-source.js'
import { downloadBuffers } from './download-buffers.js'

type RawResponse = FastifyReply['raw']

/** The client closed the connection: nothing more to send, nothing to report. */
class ClientGone extends Error {}

export async function sendPulled(reply: FastifyReply, body: Readable & PullSource, length: number): Promise<void> {
  reply.hijack()
  const res = reply.raw
  res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
  const gone = clientGone(res)
  const untilGone = <T>(work: Promise<T>): Promise<T> => Promise.race([work, gone.promise])
  const buffers = [downloadBuffers.take(), downloadBuffers.take()]
  let clean = false
  try {
    let sent = 0
    let previous: Promise<void> | undefined
    for (let i = 0; sent < length; i ^= 1) {
      // Safe to refill: the write that used this buffer finished before `previous` was issued.
      const buffer = buffers[i]!
      const want = Math.min(buffer.length, length - sent)
      const read = await untilGone(body.readInto(want === buffer.length ? buffer : buffer.subarray(0, want)))
      if (read === 0) throw new Error(`blob ended after ${sent} of ${length} bytes`)
      if (previous) await untilGone(previous)
      previous = write(res, read === buffer.length ? buffer : buffer.subarray(0, read))
      sent += read
    }
    if (previous) await untilGone(previous)
    res.end()
    clean = true
  } catch (err) {
    if (!(err instanceof ClientGone)) {
      reply.log.warn({ err }, 'blob download failed midway')
      res.destroy(err instanceof Error ? err : new Error('blob download failed'))
    }
  } finally {
    body.destroy()
    gone.dispose()
    // After a failure a destroyed socket may still hold a buffer: those are left to the GC.
    if (clean) for (const buffer of buffers) downloadBuffers.give(buffer)
  }
}

function write(res: RawResponse, chunk: Buffer): Promise<void> {
  const written = new Promise<void>((resolve, reject) => {
    res.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()))
  })
  written.catch(() => {}) // awaited by the loop, unless it already stopped for another reason
  return written
}

/** Rejects with ClientGone when the response closes before it finished. */
function clientGone(res: RawResponse): { promise: Promise<never>; dispose(): void } {
  let onClose = (): void => {}
  const promise = new Promise<never>((_resolve, reject) => {
    onClose = () => {
      if (!res.writableFinished) reject(new ClientGone('client closed the connection'))
    }
    res.once('close', onClose)
  })
  promise.catch(() => {}) // nobody may be waiting when it happens
  return { promise, dispose: () => res.removeListener('close', onClose) }
}
