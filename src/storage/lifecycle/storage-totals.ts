// Bytes stored by kind (pushed, cached per upstream, unreferenced), kept current without walking
// storage: a blob or manifest newly committed adds to its kind, eviction and GC take away what
// they free. Every walk (an eviction pass, `usage()`, the periodic re-base) replaces them with what
// it measured, correcting what running totals cannot see (a blob that changed hands, a deleted tag).
import type { Usage } from './usage.js'

export type StoredKind = 'pushed' | 'cached' | 'unreferenced'

export class StorageTotals {
  pushed = 0
  unreferenced = 0
  readonly cached = new Map<string, number>()

  /** `changed` runs after every change (the metrics read the totals from it). */
  constructor(private readonly changed: (totals: StorageTotals) => void = () => {}) {}

  rebase(usage: Usage): void {
    this.pushed = usage.pushedBytes
    this.unreferenced = usage.unreferencedBytes
    this.cached.clear()
    for (const [upstream, bytes] of usage.cachedByUpstream) this.cached.set(upstream, bytes)
    this.changed(this)
  }

  /** `bytes` more (or fewer, when negative) of `kind`; `upstream` for cached bytes. Never below zero. */
  add(kind: StoredKind, bytes: number, upstream = ''): void {
    if (kind === 'cached') this.cached.set(upstream, Math.max(0, (this.cached.get(upstream) ?? 0) + bytes))
    else this[kind] = Math.max(0, this[kind] + bytes)
    this.changed(this)
  }
}
