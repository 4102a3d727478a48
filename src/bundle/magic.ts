// What a stream holds, from its first bytes: the compression formats bundles arrive in, and tar.
// File names are never consulted: `images.tar` may be zstd, and `layer.tar.gz` plain.

export type ArchiveKind = 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'tar'
export type Compression = Exclude<ArchiveKind, 'tar'>

/** Bytes of a stream's head that decide its kind: a tar's magic sits at offset 257. */
export const sniffLength = 262

const signatures: Array<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['bzip2', [0x42, 0x5a, 0x68]],
]

/** The kind of archive `head` starts, or undefined when it is none of them. */
export function sniff(head: Uint8Array): ArchiveKind | undefined {
  for (const [kind, magic] of signatures) {
    if (head.length >= magic.length && magic.every((byte, i) => head[i] === byte)) return kind
  }
  // POSIX `ustar\0` and GNU `ustar  \0` both start with these five bytes.
  if (head.length >= 262 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'tar'
  return undefined
}

export function isCompression(kind: ArchiveKind | undefined): kind is Compression {
  return kind !== undefined && kind !== 'tar'
}
