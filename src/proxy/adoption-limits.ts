// What one manifest push into a mirrored repository may bring in from the upstream (blob-adoption.ts).

export interface AdoptionLimits {
  /** Most blobs one manifest PUT may copy from the upstream. */
  blobs: number
  /** Most bytes (by the upstream's sizes) one manifest PUT may copy. */
  bytes: number
  /** Existence checks (upstream HEADs) in flight at once. */
  checks: number
  /** Copies in flight at once. */
  copies: number
}

// Far above any image (layer counts stop near 128) while keeping a hostile manifest cheap.
export const defaultAdoptionLimits: AdoptionLimits = { blobs: 1000, bytes: 32 * 1024 ** 3, checks: 8, copies: 4 }
