// Sends a blob body (body-sources.ts: a stored file read into shared blocks, or a fill's
// shared blocks) straight to the raw response, pipelineDepth chunks deep: a chunk is written as
// soon as it is read, queued behind the one leaving the socket, so the socket never waits for
// JavaScript between chunks, and the next read runs meanwhile. A chunk is released only once the
// socket has let go of it (its write callback), which is also the backpressure.
//
// The status line and headers go out with the first chunk, not before: a body that fails before
// its first byte (a fill that failed, a stored file that cannot be read) is answered with its OCI
// error, status and body, by the error handler. From the first byte on, the reply is hijacked,
// so fastify does not pipe, but its onResponse hooks (access line, metrics) still run when the
// response finishes. A source that ends before `length` bytes (a truncated file) or fails after
// that destroys the response: the client sees a broken download (HTTP/1.1 connection closed
// short of Content-Length, HTTP/2 stream reset), never a short 200.
import type { FastifyReply } from 'fastify'
import type { OutgoingHttpHeaders } from 'node:http'
import type { Readable } from 'node:stream'
import type { SharedChunkSource } from './body-sources.js'
import type { SharedRead } from './shared-reads.js'

type RawResponse = FastifyReply['raw']

/** The client closed the connection: nothing more to send, nothing to report. */
class ClientGone extends Error {}

/** A chunk to write, and what to do once the socket let go of it (or the response failed). */
interface Lent {
  bytes: Buffer
  release(): void
}

/**
 * How a response hands its bytes to the socket. Over TLS (HTTP/1.1 or HTTP/2) each write is
 * encrypted whole into a buffer of its own size (over HTTP/2, first copied together with its
 * frame headers), and writes queued behind one in flight are taken together: 1 MiB writes cost
 * 2-3 MiB of transient memory per connection, 30-50 MiB over the blocks with 16 downloads (#18).
 * Slices of a block, one in flight and one queued, bound that. In plain text the kernel copies
 * straight from the block, so whole blocks go, pipelineDepth deep.
 */
export interface WritePlan {
  /** The largest write handed to the socket. */
  sliceBytes: number
  /** Writes handed to the socket and not yet taken by it. */
  slicesInFlight: number
  /** Chunks (blocks) a response holds at once: in the socket, being sliced, or read ahead. */
  chunksHeld: number
}

/**
 * Sends bytes `start`..`start + length` of a stored blob from blocks shared with every other
 * download of the same digest (shared-reads.ts), read through this body's own file handle.
 */
export function sendStored(reply: FastifyReply, body: Readable, read: SharedRead, length: number, plan: WritePlan): Promise<void> {
  return sendLent(reply, body, length, plan, {
    next: () => read.next(),
    finish: () => read.close(),
  })
}

/** Sends a body made of chunks shared with other responses (a mirror fill's blocks): no copies. */
export function sendShared(reply: FastifyReply, body: Readable & SharedChunkSource, length: number, plan: WritePlan): Promise<void> {
  return sendLent(reply, body, length, plan, {
    async next() {
      return (await body.nextShared()) ?? { bytes: Buffer.alloc(0), release: () => {} }
    },
    finish() {},
  })
}

interface Lender {
  /** The next chunk of at most `want` bytes (empty: the body ended early). */
  next(want: number): Promise<Lent>
  finish(clean: boolean): void
}

async function sendLent(reply: FastifyReply, body: Readable, length: number, plan: WritePlan, lender: Lender): Promise<void> {
  const res = reply.raw
  const gone = clientGone(res)
  const untilGone = <T>(work: Promise<T>): Promise<T> => Promise.race([work, gone.promise])
  let clean = false
  let started = false
  let failedBeforeFirstByte: { err: unknown } | undefined
  // Writes the socket has not taken yet; a chunk is released with the write of its last slice.
  const inSocket: { written: Promise<void>; chunk: Lent | undefined }[] = []
  // Chunks lent and not released yet (in the socket, being sliced, or read ahead).
  let held = 0
  const settleOldest = async (): Promise<void> => {
    await untilGone(inSocket[0]!.written)
    const { chunk } = inSocket.shift()!
    if (!chunk) return
    chunk.release()
    held--
  }
  // The chunk being sliced, until its last slice is written.
  let slicing: Lent | undefined
  // The next chunk, read while the ones before it are written.
  let pending: Promise<Lent> | undefined
  try {
    let lent = 0
    pending = lender.next(length)
    while (pending) {
      const chunk = await untilGone(pending)
      pending = undefined
      if (chunk.bytes.length === 0) throw new Error(`blob ended after ${lent} of ${length} bytes`)
      held++
      slicing = chunk
      lent += chunk.bytes.length
      if (!started) {
        reply.hijack()
        res.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders)
        started = true
      }
      if (lent < length) {
        // Read ahead, once an older chunk is sent if this response holds as many as it may.
        while (held >= plan.chunksHeld) await settleOldest()
        pending = lender.next(length - lent)
      }
      const { bytes } = chunk
      for (let at = 0; at < bytes.length; at += plan.sliceBytes) {
        while (inSocket.length >= plan.slicesInFlight) await settleOldest()
        const last = at + plan.sliceBytes >= bytes.length
        const slice = at === 0 && last ? bytes : bytes.subarray(at, at + plan.sliceBytes)
        // Written at once, without waiting for the previous write: the socket queues it.
        inSocket.push({ written: write(res, slice), chunk: last ? chunk : undefined })
        if (last) slicing = undefined
      }
    }
    while (inSocket.length > 0) await settleOldest()
    res.end()
    clean = true
  } catch (err) {
    if (err instanceof ClientGone) {
      // Nothing left to answer: keep fastify from answering a closed response.
      if (!started) reply.hijack()
    } else if (!started) {
      failedBeforeFirstByte = { err }
    } else {
      reply.log.warn({ err }, 'blob download failed midway')
      res.destroy(err instanceof Error ? err : new Error('blob download failed'))
    }
  } finally {
    lender.finish(clean)
    for (const { chunk } of inSocket.splice(0)) chunk?.release()
    slicing?.release()
    // A chunk that arrives after the client left is given back unsent.
    pending?.then(
      (chunk) => chunk.release(),
      () => {},
    )
    body.destroy()
    gone.dispose()
  }
  // Nothing was sent yet: the error handler answers with the error's status and body.
  if (failedBeforeFirstByte) throw failedBeforeFirstByte.err
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
