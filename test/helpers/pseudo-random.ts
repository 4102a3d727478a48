// Deterministic, incompressible pseudo-random bytes of any length without holding them in
// memory: the AES-128-CTR keystream of a seed (GB/s with AES-NI). The same seed always yields
// the same bytes, so a test can compute a digest in one pass and upload in another.
import { createCipheriv, createHash, type Cipher, type Hash } from 'node:crypto'
import { Readable } from 'node:stream'

const defaultChunk = 1024 * 1024

export class PseudoRandomSource {
  private readonly cipher: Cipher
  private readonly zeros: Buffer
  /** Bytes produced so far. */
  position = 0

  constructor(
    seed: string,
    private readonly chunkSize = defaultChunk,
  ) {
    const key = createHash('sha256').update(seed).digest()
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32))
    this.zeros = Buffer.alloc(chunkSize)
  }

  /** The next `n` (at most the chunk size) bytes of the stream, in a fresh buffer. */
  next(n = this.chunkSize): Buffer {
    if (n > this.chunkSize) throw new RangeError(`at most ${this.chunkSize} bytes at a time`)
    this.position += n
    return this.cipher.update(this.zeros.subarray(0, n))
  }

  /**
   * A Readable of the next `length` bytes, produced one chunk per read() so the consumer's
   * backpressure bounds memory. `hash` (if given) sees every byte as it is produced.
   */
  stream(length: number, hash?: Hash): Readable {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- read() below runs with the Readable as `this`
    const source = this
    let left = length
    return new Readable({
      highWaterMark: this.chunkSize,
      read(this: Readable) {
        if (left === 0) {
          this.push(null)
          return
        }
        const chunk = source.next(Math.min(left, source.chunkSize))
        left -= chunk.length
        hash?.update(chunk)
        this.push(chunk)
      },
    })
  }
}

/** The sha256 digest (`sha256:<hex>`) of the first `length` bytes of `seed`'s stream. */
export function pseudoRandomDigest(seed: string, length: number): string {
  const source = new PseudoRandomSource(seed)
  const hash = createHash('sha256')
  for (let left = length; left > 0;) {
    const chunk = source.next(Math.min(left, defaultChunk))
    hash.update(chunk)
    left -= chunk.length
  }
  return `sha256:${hash.digest('hex')}`
}
