// Failed-login rate limiting per client address: at most `max` failures within a sliding
// `window`; past that, login attempts from the address are refused (429) without checking the
// credentials, until the oldest failure leaves the window. Successes do not reset the count, or
// an attacker holding one account could interleave its own logins with guesses at others.
import { LRUCache } from 'lru-cache'

export interface LoginLimiterOptions {
  max: number
  windowMs: number
  now?: () => number
}

export class LoginLimiter {
  // Bounded: a flood from many addresses evicts the oldest ones rather than growing memory.
  private readonly failures = new LRUCache<string, number[]>({ max: 10_000 })
  private readonly now: () => number

  constructor(private readonly options: LoginLimiterOptions) {
    this.now = options.now ?? Date.now
  }

  /** Seconds until `remote` may try again, or 0 when it may try now. */
  retryAfter(remote: string): number {
    // Every Basic request asks: an address without failures costs one lookup, no arrays.
    if (this.options.max > 0 && !this.failures.has(remote)) return 0
    const recent = this.recent(remote)
    if (recent.length < this.options.max) return 0
    const oldest = recent[recent.length - this.options.max] ?? this.now()
    return Math.max(1, Math.ceil((oldest + this.options.windowMs - this.now()) / 1000))
  }

  fail(remote: string): void {
    const recent = this.recent(remote)
    recent.push(this.now())
    // Only the last `max` matter for the decision.
    this.failures.set(remote, recent.slice(-this.options.max))
  }

  private recent(remote: string): number[] {
    const cutoff = this.now() - this.options.windowMs
    return (this.failures.get(remote) ?? []).filter((t) => t > cutoff)
  }
}
