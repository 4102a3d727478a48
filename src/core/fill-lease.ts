// The contract by which replicas on one storage agree on who fills a cold blob or manifest from
// the upstream. One replica takes a lease on the content's key and fetches; the others stream
// the fill from it as it grows (or read the storage once it landed). A lease expires unless its
// holder keeps renewing it, so a replica that dies mid-fill loses it and another takes over.
import type { Readable } from 'node:stream'

/** Where another replica's fill is streamed from: its advertised base URL and its lease's token. */
export interface LeaseHolder {
  url: string
  /** The peer endpoint serves a fill only to a caller presenting the holder's current token. */
  token: string
}

export interface FillLease {
  readonly token: string
  /** Gives the lease up if it is still ours. Never rejects. */
  release(): Promise<void>
}

export type LeaseAttempt = { held: true; lease: FillLease } | { held: false; holder: LeaseHolder | undefined }

/** A fill read from the replica that runs it: the whole blob's size and the bytes from `start` on, as they arrive. */
export interface PeerFill {
  size: number
  stream: Readable
}

export interface FillCoordinator {
  /** False when each replica fills on its own (no shared lease store): every attempt is held. */
  readonly shared: boolean
  /** How long to wait before asking again when the holder cannot be followed (yet). */
  readonly retryMs: number
  /** How long a lease outlives its holder: a waiter gives up after a few of these without progress. */
  readonly leaseTtlMs: number
  /** Takes the lease on `key` when nobody holds it; otherwise says who does. */
  acquire(key: string): Promise<LeaseAttempt>
  /** The token of the lease this process holds on `key` (what the peer endpoint checks). */
  heldToken(key: string): string | undefined
  /**
   * Streams the fill of `key` from its holder, from byte `start`. undefined when the holder has
   * no such fill (any more); throws when it cannot be reached.
   */
  follow(holder: LeaseHolder, key: string, start: number): Promise<PeerFill | undefined>
  close(): Promise<void>
}
