// Lends one body's bytes out of its blob's shared blocks (shared-blocks.ts), for a download of a
// stored blob (shared-reads.ts) and for a follower of a mirror fill (fill-follower.ts) alike: a
// block in memory is pinned and sliced, a missing one is loaded from the file once for every
// reader, and when the budget has no block to spare the bytes go through this reader's own small
// buffers, so no reader ever waits for another client's socket.
import type { SharedChunk } from './body-sources.js'
import { blockSize, type Block, type SharedBlocks } from './shared-blocks.js'

/** Why lend() handed out nothing; the caller decides how to wait before asking again. */
export type NotLent =
  /** The block is not in memory and may not be loaded yet (a fill has not received it). */
  | 'not-loadable'
  /** The block is in memory but not filled as far as asked (a fill's newest block). */
  | 'not-filled'
  /** Another reader's load of the block failed (e.g. its client left): ask again, this reader loads it. */
  | 'load-failed-elsewhere'

export class BlockReader {
  readonly #spare: Buffer[] = []

  constructor(
    private readonly blocks: SharedBlocks,
    /** Fills `buffer` with the body's file bytes at `position`, or rejects. */
    private readonly readFully: (buffer: Buffer, position: number) => Promise<void>,
    /** The size of this reader's private buffers, used only when the budget is spent. */
    private readonly overflowBytes: number,
  ) {}

  /**
   * Bytes `position`..`stop` (exclusive, within one block whose length is `blockLength`), lent
   * until the chunk is released; a chunk may be shorter than asked. Rejects when this reader's
   * own load of the block failed.
   */
  async lend(position: number, stop: number, blockLength: number, loadable: boolean): Promise<SharedChunk | NotLent> {
    const index = Math.floor(position / blockSize)
    const blockStart = index * blockSize
    let block = this.blocks.pin(index)
    let mine = false
    if (!block) {
      if (!loadable) return 'not-loadable'
      block = this.blocks.load(index, blockLength, (buffer) => this.readFully(buffer, blockStart))
      if (!block) return this.#overflow(position, stop)
      mine = true
    }
    try {
      await block.ready
    } catch (err) {
      this.blocks.unpin(block)
      if (mine) throw err
      return 'load-failed-elsewhere'
    }
    const from = position - blockStart
    const to = Math.min(stop - blockStart, block.filled)
    if (to <= from) {
      this.blocks.unpin(block)
      return 'not-filled'
    }
    return this.#slice(block, from, to)
  }

  #slice(block: Block, from: number, to: number): SharedChunk {
    let released = false
    return {
      bytes: block.buffer.subarray(from, to),
      release: () => {
        if (released) return
        released = true
        this.blocks.unpin(block)
      },
    }
  }

  async #overflow(position: number, stop: number): Promise<SharedChunk> {
    const own = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.overflowBytes)
    const bytes = own.subarray(0, Math.min(this.overflowBytes, stop - position))
    try {
      await this.readFully(bytes, position)
    } catch (err) {
      this.#spare.push(own)
      throw err
    }
    return { bytes, release: () => this.#spare.push(own) }
  }
}

/** A chunk that says the body ended (or the reader closed): nothing to send, nothing to release. */
export const endOfBody: SharedChunk = { bytes: Buffer.alloc(0), release: () => {} }
