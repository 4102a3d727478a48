import { createHash, type Hash } from 'node:crypto'
import { RegistryError } from './errors.js'

/** A validated content digest such as `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __brand: 'Digest' }

export type DigestAlgorithm = 'sha256' | 'sha512'

const encodedLength: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 }

// The spec's general grammar; anything matching it but using another algorithm is well-formed
// yet unsupported, which the spec also answers with DIGEST_INVALID.
const digestGrammar = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/

export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return value === 'sha256' || value === 'sha512'
}

/** Returns the digest if it is well-formed and of a supported algorithm, else undefined. */
export function tryParseDigest(value: string): Digest | undefined {
  if (value.length > 256 || !digestGrammar.test(value)) return undefined
  const colon = value.indexOf(':')
  const algorithm = value.slice(0, colon)
  const encoded = value.slice(colon + 1)
  if (!isDigestAlgorithm(algorithm)) return undefined
  if (encoded.length !== encodedLength[algorithm] || !/^[a-f0-9]+$/.test(encoded)) return undefined
  return value as Digest
}

/** Parses a digest or throws DIGEST_INVALID naming the offending value. */
export function parseDigest(value: string): Digest {
  const digest = tryParseDigest(value)
  if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { digest: value.slice(0, 300) })
  return digest
}

export function digestAlgorithm(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm
}

export function digestEncoded(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1)
}

export function createDigestHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm)
}

export function digestOfHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest
}

export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return digestOfHash(algorithm, createHash(algorithm).update(bytes))
}

/**
 * A sha256 computed on another thread while the caller goes on (a bulk import, whose main thread
 * is busy reading the bundle). Chunks are shared, not copied, where they live in shared memory:
 * a chunk must not change once fed.
 */
export interface DeferredHash {
  /** Feeds a chunk; when a promise comes back, the caller waits for it (the bytes not yet hashed are bounded). */
  update(chunk: Buffer): Promise<void> | undefined
  /** The hex digest of every chunk fed; the hash is finished. Rejects when its thread failed. */
  digest(): Promise<string>
  /** Drops a hash that will not be finished. */
  dispose(): void
}

/** Where DeferredHashes come from. */
export interface DeferredHashes {
  sha256(): DeferredHash
}
