// The bytes of one blob that several responses send at once, in aligned 1 MiB blocks shared by
// all of them: a mirror fill copies what it receives into its newest block once, a block not
// in memory is loaded from the file once for every reader, and each response writes slices of
// these same Buffers to its socket (no copy per response). Memory is one process-wide budget,
// whatever the number of readers: a block is kept only while it fits, and an unpinned block (no
// write in flight) is dropped, least recently used first, to make room.
import { RegistryError } from '../core/errors.js'

export const blockSize = 1024 * 1024

/** Bytes held by shared blocks in this process, against one budget (issue #6: RSS ≤ 150 MiB). */
export class BlockBudget {
  held = 0
  peak = 0
  /** Told when the last block held is given back (composition reclaims the memory then). */
  onEmpty: (() => void) | undefined
  /**
   * Told of each network chunk a fill copies into its blocks (composition collects the dead ones
   * before they pile up: a chunk is dead once copied and written, but only a GC frees its memory).
   */
  onCopied: ((bytes: number) => void) | undefined
  constructor(readonly budget: number) {}

  /** Reserves one block's bytes if they fit. */
  reserve(): boolean {
    if (this.held + blockSize > this.budget) return false
    this.held += blockSize
    if (this.held > this.peak) this.peak = this.held
    return true
  }

  free(): void {
    this.held -= blockSize
    if (this.held === 0) this.onEmpty?.()
  }
}

/**
 * The process-wide budget composition creates: mirror fills and stored-blob downloads together,
 * 16 concurrent downloads of different blobs at three blocks each, or three fills' shares
 * (containerd pulls three layers at once); past it, a download reads into small private buffers.
 */
export const defaultBlockBudgetBytes = 48 * blockSize

export interface Block {
  readonly index: number
  readonly buffer: Buffer
  /** Bytes of `buffer` that hold the blob (the fill's newest block grows). */
  filled: number
  /** Writes in flight (or loads) that use this block; only an unpinned block is dropped. */
  pins: number
  /** Settles when a block loaded from the file is readable; rejects when that load failed. */
  ready: Promise<void>
}

export class SharedBlocks {
  /** Least recently used first (a block is moved to the end when unpinned). */
  private readonly blocks = new Map<number, Block>()
  /** The block the fill is writing into (undefined: none, or it did not fit the budget). */
  private live: Block | undefined
  private liveIndex = -1
  /**
   * Blocks from this index on are never given up for another: a fill with no file behind it (a
   * full volume) keeps every byte a follower has yet to send. Infinity: any unpinned block may go.
   */
  keepFrom = Infinity

  constructor(
    /** How many blocks this blob may hold (a fill: its newest bytes and what followers send). */
    private readonly share: () => number,
    private readonly memory: BlockBudget,
  ) {}

  /** The fill's next bytes: copied into the newest block (kept when the budget allows). */
  append(chunk: Buffer, offset: number): void {
    this.memory.onCopied?.(chunk.length)
    for (let at = 0; at < chunk.length;) {
      const index = Math.floor((offset + at) / blockSize)
      if (index !== this.liveIndex) this.startLive(index)
      const within = (offset + at) % blockSize
      const take = Math.min(chunk.length - at, blockSize - within)
      if (this.live) {
        chunk.copy(this.live.buffer, within, at, at + take)
        this.live.filled = within + take
      }
      at += take
    }
  }

  /** Whether the block holding `index` is in memory. */
  holds(index: number): boolean {
    return this.blocks.has(index)
  }

  /** The block holding `index`, pinned (the caller unpins), or undefined when not in memory. */
  pin(index: number): Block | undefined {
    const block = this.blocks.get(index)
    if (block) block.pins++
    return block
  }

  unpin(block: Block): void {
    block.pins--
    if (block.pins === 0 && this.blocks.get(block.index) === block) {
      this.blocks.delete(block.index) // most recently used now
      this.blocks.set(block.index, block)
    }
  }

  /**
   * A new pinned block for `index` whose bytes `load` reads (once for every follower waiting
   * for it), or undefined when the budget is spent on blocks in use.
   */
  load(index: number, length: number, load: (buffer: Buffer) => Promise<void>): Block | undefined {
    const buffer = this.allocate()
    if (!buffer) return undefined
    const block: Block = { index, buffer, filled: length, pins: 1, ready: Promise.resolve() }
    block.ready = load(buffer.subarray(0, length)).catch((err: unknown) => {
      // Nobody may use it: drop it (its pins are released by their holders).
      if (this.blocks.get(index) === block) this.forget(block)
      throw err instanceof Error ? err : new RegistryError('UNKNOWN', 'blob read failed')
    })
    block.ready.catch(() => {})
    this.blocks.set(index, block)
    return block
  }

  /** Lets go of every block (the fill is over and nobody follows it any more). */
  clear(): void {
    for (const block of this.blocks.values()) this.forget(block)
    this.live = undefined
  }

  /** The fill is over: its newest block stops growing. */
  endLive(): void {
    this.live = undefined
    this.liveIndex = -1
  }

  private startLive(index: number): void {
    this.liveIndex = index
    this.live = undefined // the previous newest block is complete: now like any other
    const buffer = this.allocate()
    this.live = buffer ? { index, buffer, filled: 0, pins: 0, ready: Promise.resolve() } : undefined
    if (this.live) this.blocks.set(index, this.live)
  }

  /**
   * A block's buffer: a new one while this fill holds fewer than its share and the process-wide
   * budget allows, else the least recently used unpinned block's (its bytes stay reserved).
   */
  private allocate(): Buffer | undefined {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    if (this.blocks.size < this.share() && this.memory.reserve()) return Buffer.allocUnsafeSlow(blockSize)
    for (const block of this.blocks.values()) {
      if (block.pins === 0 && block !== this.live && block.index < this.keepFrom) {
        this.blocks.delete(block.index)
        return block.buffer
      }
    }
    return undefined
  }

  private forget(block: Block): void {
    this.blocks.delete(block.index)
    this.memory.free()
  }
}
