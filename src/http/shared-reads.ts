// Downloads of one stored blob that run at the same time share its 1 MiB blocks
// (core/shared-blocks.ts): a block is read from the file once, by whichever response needs it
// first through its own file handle, and written to every socket from the same Buffer. Thirty-two
// pods pulling one layer then cost one read of each block and at most 16 MiB, not 32 reads and
// 64 MiB; a lone download holds three blocks (pipelineDepth), as with its own buffers. Blocks are keyed by
// digest: content-addressed, so any file of that digest has the same bytes.
import type { PositionalSource, SharedChunk } from '../core/pull-source.js'
import { blockSize, SharedBlocks, type Block } from '../core/shared-blocks.js'
import { pipelineDepth } from './pipeline-depth.js'

/** Blocks a blob may hold: pipelineDepth per download (in the socket, or read ahead), at most 16. */
const maxShare = 16
/** Reads when the process-wide budget has no block to spare: private, reused buffers. */
const overflowRead = 256 * 1024

interface Share {
  blocks: SharedBlocks
  readers: number
}

const shares = new Map<string, Share>()

/** Bytes `start`..`end` (exclusive) of a stored blob, in chunks lent from the blob's shared blocks. */
export class SharedRead {
  #position: number
  readonly #share: Share
  #spare: Buffer[] = []
  #closed = false

  constructor(
    private readonly digest: string,
    private readonly file: PositionalSource,
    start: number,
    private readonly end: number,
    private readonly size: number,
  ) {
    this.#position = start
    let share = shares.get(digest)
    if (!share) {
      const created: Share = { blocks: new SharedBlocks(() => Math.min(maxShare, pipelineDepth * created.readers)), readers: 0 }
      shares.set(digest, (share = created))
    }
    share.readers++
    this.#share = share
  }

  /** The next chunk (empty once `end` is reached or the file ended early). */
  async next(): Promise<SharedChunk> {
    const blocks = this.#share.blocks
    for (;;) {
      if (this.#position >= this.end || this.#closed) return { bytes: Buffer.alloc(0), release: () => {} }
      const index = Math.floor(this.#position / blockSize)
      const blockStart = index * blockSize
      const stop = Math.min(this.end, blockStart + blockSize)
      let block = blocks.pin(index)
      let mine = false
      if (!block) {
        block = blocks.load(index, Math.min(blockSize, this.size - blockStart), (buffer) => this.#readFully(buffer, blockStart))
        if (!block) return this.#overflow(stop)
        mine = true
      }
      try {
        await block.ready
      } catch (err) {
        blocks.unpin(block)
        if (mine) throw err
        continue // another response's read failed: read it through this one's own file
      }
      return this.#lend(block, stop)
    }
  }

  /** Leaves the share; the last one out gives its blocks back to the budget. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (--this.#share.readers > 0) return
    this.#share.blocks.clear()
    if (shares.get(this.digest) === this.#share) shares.delete(this.digest)
  }

  #lend(block: Block, stop: number): SharedChunk {
    const from = this.#position - block.index * blockSize
    const to = stop - block.index * blockSize
    this.#position = stop
    let released = false
    return {
      bytes: block.buffer.subarray(from, to),
      release: () => {
        if (released) return
        released = true
        this.#share.blocks.unpin(block)
      },
    }
  }

  async #overflow(stop: number): Promise<SharedChunk> {
    const own = this.#spare.pop() ?? Buffer.allocUnsafeSlow(overflowRead)
    const bytes = own.subarray(0, Math.min(overflowRead, stop - this.#position))
    await this.#readFully(bytes, this.#position)
    this.#position += bytes.length
    return { bytes, release: () => this.#spare.push(own) }
  }

  async #readFully(buffer: Buffer, position: number): Promise<void> {
    for (let got = 0; got < buffer.length;) {
      const read = await this.file.readAt(got === 0 ? buffer : buffer.subarray(got), position + got)
      if (read === 0) throw new Error(`blob file ended at ${position + got} of ${this.size} bytes`)
      got += read
    }
  }
}
