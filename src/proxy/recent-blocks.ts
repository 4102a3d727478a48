// The newest bytes of a blob fill, kept in memory up to a byte limit. Followers close behind
// the download (nearly all of them in a fan-out) copy their next chunk from here instead of
// each opening and reading the upload file: 32 followers meant 32 reads of every MiB.
export class RecentBlocks {
  private blocks: Buffer[] = []
  /** Offset of blocks[0]'s first byte in the blob. */
  private first = 0
  /** Offset just past the newest byte held. */
  private end = 0
  private held = 0

  constructor(private readonly limit: number) {}

  /** Adds the next bytes of the blob (they are kept by reference, never modified). */
  append(chunk: Buffer): void {
    this.blocks.push(chunk)
    this.end += chunk.length
    this.held += chunk.length
    while (this.held - this.blocks[0]!.length >= this.limit) {
      const dropped = this.blocks.shift()!
      this.first += dropped.length
      this.held -= dropped.length
    }
  }

  /** A copy of bytes `start`..`endInclusive`, or undefined when they are not all held (read the file). */
  copy(start: number, endInclusive: number): Buffer | undefined {
    if (start < this.first || endInclusive >= this.end || endInclusive < start) return undefined
    const out = Buffer.allocUnsafe(endInclusive - start + 1)
    let offset = this.first
    let written = 0
    for (const block of this.blocks) {
      const blockEnd = offset + block.length
      if (blockEnd > start && offset <= endInclusive) {
        const from = Math.max(start, offset) - offset
        const to = Math.min(endInclusive + 1, blockEnd) - offset
        written += block.copy(out, written, from, to)
      }
      offset = blockEnd
      if (offset > endInclusive) break
    }
    return out
  }

  /** Lets go of every block (the fill is over). */
  clear(): void {
    this.blocks = []
    this.first = this.end
    this.held = 0
  }
}
