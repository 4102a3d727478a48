// Incompressible blob contents without holding them in memory: the AES-CTR keystream of a seed
// (test/helpers/pseudo-random.ts), written to files for the file server, or streamed to uploads.
import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { PseudoRandomSource } from '../../test/helpers/pseudo-random.js'

/** The blob of `seed` and `size` as a stream (the same bytes every time). */
export function randomBlob(seed: string, size: number): Readable {
  return new PseudoRandomSource(seed).stream(size)
}

/** A source whose consecutive `chunk(n)` streams continue the same blob (for chunked uploads). */
export function randomChunks(seed: string): (length: number) => Readable {
  const source = new PseudoRandomSource(seed)
  return (length) => source.stream(length)
}

const digests = new Map<string, string>()

/** sha256 digest of the blob of `seed` and `size` (one pass, remembered). */
export async function randomBlobDigest(seed: string, size: number): Promise<string> {
  const key = `${seed}\u0000${size}`
  const known = digests.get(key)
  if (known) return known
  const hash = createHash('sha256')
  for await (const chunk of randomBlob(seed, size)) hash.update(chunk as Buffer)
  const digest = `sha256:${hash.digest('hex')}`
  digests.set(key, digest)
  return digest
}

/** Writes the blob of `seed` and `size` to `path`; returns its digest. */
export async function writeRandomBlob(path: string, seed: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  const source = new PseudoRandomSource(seed).stream(size, hash)
  await pipeline(source, createWriteStream(path))
  const digest = `sha256:${hash.digest('hex')}`
  digests.set(`${seed}\u0000${size}`, digest)
  return digest
}
