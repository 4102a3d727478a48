// The buffers blob downloads are sent from. A response borrows three and gives them back when its
// last write has left them; up to `maxIdle` wait here for the next response, so steady
// downloads allocate nothing and the idle pool is bounded (8 MiB) however many
// downloads ran at once.
export class BufferPool {
  private readonly idle: Buffer[] = []

  constructor(
    readonly bufferSize: number,
    private readonly maxIdle: number,
  ) {}

  take(): Buffer {
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool.
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.bufferSize)
  }

  give(buffer: Buffer): void {
    if (this.idle.length < this.maxIdle) this.idle.push(buffer)
  }
}

/** 1 MiB reads: ~3x faster than 64 KiB ones for blob-sized files (measured in bench/). */
export const downloadBuffers = new BufferPool(1024 * 1024, 8)

/**
 * Chunks lent per download: one leaving the socket, one queued behind it, one being read. With
 * two (one written, one read) the socket's queue was empty whenever a write finished, and it
 * idled until JavaScript issued the next write (three: ~10 % more MB/s at the same CPU).
 */
export const pipelineDepth = 3
