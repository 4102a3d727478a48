// What a fill's followers read when a block is no longer in memory: a handle on the upload file
// (or, once committed, the blob file), in the shape the follower reads (positional reads).
import type { Readable } from 'node:stream'
import { RegistryError } from '../core/errors.js'
import type { ByteRange } from '../core/range.js'
import type { PositionalSource } from '../transfer/body-sources.js'

export type FileSource = PositionalSource & { destroy(): unknown }

/** No file behind the fill (a full volume): what memory no longer holds cannot be sent. */
export function noFile(err: Error): FileSource {
  return {
    readAt: () => Promise.reject(new RegistryError('UNKNOWN', `blob not cached: ${err.message}`)),
    destroy: () => {},
  }
}

/** For a storage driver without positional reads: one ranged stream (`readRange`) per read of a blob of `size` bytes. */
export function rangeReads(first: Readable, size: number, readRange: (range: ByteRange) => Promise<Readable>): FileSource {
  first.destroy()
  return {
    readAt: async (target, position) => {
      const stream = await readRange({ start: position, end: Math.min(position + target.length, size) - 1 })
      let got = 0
      for await (const chunk of stream) got += (chunk as Buffer).copy(target, got)
      return got
    },
    destroy: () => {},
  }
}
