// The one place that decides how a blob body leaves the process, given what the body can do
// (body-sources.ts) and what the connection allows:
//   a mirror fill still running: its own shared blocks as the upstream's bytes arrive (send-lent.ts),
//     never read back from the upload file at the disk's pace (#18);
//   plain HTTP/1.1 + the sendfile(2) helper: the kernel sends a stored file, or a verified fill's
//     upload file before its commit, or splices an S3 GET's socket to the client's (send-file.ts);
//   otherwise a stored file goes out from 1 MiB blocks shared with the concurrent downloads of the
//     same blob (shared-reads.ts);
//   anything else (e.g. the memory driver's streams) is piped by fastify.
// Composition builds one per process, with the block budget that mirror fills share too.
import type { FastifyReply } from 'fastify'
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import type { Readable } from 'node:stream'
import { isFileDescriptorSource, isGrowingFileSource, isPositionalSource, isSharedChunkSource, isSocketSource } from './body-sources.js'
import { KernelSentBytes } from './kernel-sent.js'
import type { NativeSendfile } from './native-sendfile.js'
import { sendFileRange, sendfileSocket, sendGrowingFile, sendSocketBody, type Kernel } from './send-file.js'
import { sendShared, sendStored } from './send-lent.js'
import { pipelineDepth } from './pipeline-depth.js'
import { SharedReads } from './shared-reads.js'
import type { BlockBudget } from './shared-blocks.js'

/**
 * Blocks a download holds at once (send-lent.ts). In plain text pipelineDepth. Over TLS (HTTP/2
 * is only served over TLS here) two: each write is also encrypted into a buffer of its own size
 * (over HTTP/2 first copied together with its frame headers) that lives until the socket took it,
 * so a third block in flight cost another 2-3 MiB per connection, and 16 TLS downloads peaked at
 * 166-172 MiB; with two, 136-155 (#18). Writes of 256 KiB slices bounded the memory as well but
 * cost CPU per GiB (4 writes per block) for no throughput.
 */
function depthFor(reply: FastifyReply): number {
  const encrypted = reply.request.raw.httpVersionMajor === 2 || reply.raw.socket instanceof TLSSocket
  return encrypted ? 2 : pipelineDepth
}

/** Which bytes of which blob a response carries. */
export interface BlobBodyRange {
  digest: string
  /** The blob's size. */
  size: number
  start: number
  length: number
}

export class BlobSender {
  readonly #kernel: Kernel | undefined
  readonly #sharedReads: SharedReads
  readonly #kernelSent = new KernelSentBytes()

  constructor(options: {
    /** Memory for shared blocks, the same budget mirror fills use. */
    budget: BlockBudget
    /** The sendfile(2) helper, when it is built and allowed (http.sendfile). */
    sendfile: NativeSendfile | undefined
  }) {
    this.#kernel = options.sendfile ? { native: options.sendfile, sent: this.#kernelSent } : undefined
    this.#sharedReads = new SharedReads(options.budget)
  }

  /** Bytes the kernel sent on `socket` (Node's socket.bytesWritten never counts them). */
  kernelSent(socket: Socket): number {
    return this.#kernelSent.of(socket)
  }

  /** Sends `body` as the reply's body; status and headers are already set on `reply`. */
  async send(reply: FastifyReply, body: Readable, range: BlobBodyRange): Promise<void> {
    // The kernel when the helper has a lane for this response; otherwise (no lane to spare, no
    // local file, not plain HTTP/1.1) the same bytes through JavaScript.
    const kernel = this.#kernel && sendfileSocket(reply) !== undefined ? this.#kernel : undefined
    if (kernel && isFileDescriptorSource(body) && (await sendFileRange(reply, kernel, body, range.start, range.length))) return
    // A body on a connection of its own (S3 on plain HTTP): spliced from that socket to the client's.
    if (kernel && isSocketSource(body) && (await sendSocketBody(reply, kernel, body, range.length))) return
    // A fill still running goes out of its shared blocks as the upstream's bytes arrive: the
    // upload file lags behind the network by the disk's write speed (#18). Once verified, the
    // kernel sends it from the file.
    if (
      kernel &&
      isGrowingFileSource(body) &&
      (!body.growing || !isSharedChunkSource(body)) &&
      (await sendGrowingFile(reply, kernel, body))
    )
      return
    if (isPositionalSource(body)) {
      const depth = depthFor(reply)
      const read = this.#sharedReads.open(range.digest, body, range.start, range.start + range.length, range.size, depth)
      return sendStored(reply, body, read, range.length, depth)
    }
    if (isSharedChunkSource(body)) return sendShared(reply, body, range.length, depthFor(reply))
    await reply.send(body)
  }
}
