// Downloads of one stored blob that run at the same time share its 1 MiB blocks
// (shared-blocks.ts): a block is read from the file once, by whichever response needs it first
// through its own file handle, and written to every socket from the same Buffer. Thirty-two
// pods pulling one layer then cost one read of each block and at most 16 MiB, not 32 reads and
// 64 MiB; a lone download holds three blocks (pipelineDepth), as with its own buffers. Blocks are
// keyed by digest: content-addressed, so any file of that digest has the same bytes.
import type { PositionalSource, SharedChunk } from './body-sources.js'
import { BlockReader, endOfBody } from './block-reader.js'
import { pipelineDepth } from './pipeline-depth.js'
import { blockSize, SharedBlocks, type BlockBudget } from './shared-blocks.js'

/** Blocks a blob may hold: what its downloads hold at once (pipelineDepth each, or fewer), at most 16. */
const maxShare = 16
/** Reads when the process-wide budget has no block to spare: private, reused buffers. */
const overflowRead = 256 * 1024

interface Share {
  blocks: SharedBlocks
  readers: number
  /** The blocks its readers hold at once, together (each at most `held`, given to open()). */
  held: number
}

/** The blocks of every stored blob being downloaded now, by digest, under one budget. */
export class SharedReads {
  readonly #shares = new Map<string, Share>()

  constructor(private readonly budget: BlockBudget) {}

  /**
   * Bytes `start`..`end` (exclusive) of a stored blob of `size` bytes, read through `file`, by a
   * response that holds at most `held` blocks at once (send-lent.ts).
   */
  open(digest: string, file: PositionalSource, start: number, end: number, size: number, held = pipelineDepth): SharedRead {
    let share = this.#shares.get(digest)
    if (!share) {
      const created: Share = {
        blocks: new SharedBlocks(() => Math.min(maxShare, created.held), this.budget),
        readers: 0,
        held: 0,
      }
      this.#shares.set(digest, (share = created))
    }
    share.readers++
    share.held += held
    return new SharedRead(file, start, end, size, share, () => this.#leave(digest, share, held))
  }

  /** Digests with downloads in progress (for tests and metrics). */
  get size(): number {
    return this.#shares.size
  }

  #leave(digest: string, share: Share, held: number): void {
    share.held -= held
    if (--share.readers > 0) return
    share.blocks.clear()
    if (this.#shares.get(digest) === share) this.#shares.delete(digest)
  }
}

/** One download's position in a blob whose blocks it shares with the other downloads of it. */
export class SharedRead {
  #position: number
  #closed = false
  readonly #reader: BlockReader

  constructor(
    private readonly file: PositionalSource,
    start: number,
    private readonly end: number,
    private readonly size: number,
    share: Share,
    private readonly leave: () => void,
  ) {
    this.#position = start
    this.#reader = new BlockReader(share.blocks, (buffer, position) => this.#readFully(buffer, position), overflowRead)
  }

  /** The next chunk (empty once `end` is reached or the reader closed). */
  async next(): Promise<SharedChunk> {
    for (;;) {
      if (this.#position >= this.end || this.#closed) return endOfBody
      const blockStart = Math.floor(this.#position / blockSize) * blockSize
      const stop = Math.min(this.end, blockStart + blockSize)
      const lent = await this.#reader.lend(this.#position, stop, Math.min(blockSize, this.size - blockStart), true)
      // Another download's read failed: read the block through this one's own file.
      if (typeof lent === 'string') continue
      this.#position += lent.bytes.length
      return lent
    }
  }

  /** Leaves the share; the last one out gives its blocks back to the budget. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.leave()
  }

  async #readFully(buffer: Buffer, position: number): Promise<void> {
    for (let got = 0; got < buffer.length;) {
      const read = await this.file.readAt(got === 0 ? buffer : buffer.subarray(got), position + got)
      if (read === 0) throw new Error(`blob file ended at ${position + got} of ${this.size} bytes`)
      got += read
    }
  }
}
