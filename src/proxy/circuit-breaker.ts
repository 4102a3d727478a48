// A per-upstream circuit breaker as an Upstream decorator: after `failures` consecutive
// upstream failures it opens and every call fails at once (so a dead upstream costs callers
// nothing and the mirror serves from cache); after `cooldown` one probe is let through, and its
// outcome closes or re-opens the circuit. "Not found" is a healthy answer, and so is a refusal of
// our credentials: the upstream is up and answering fast, failing fast would only hide the real
// message behind "circuit open", and a repaired key must work on the next request, not after the
// cooldown.
import type { Digest } from '../core/digest.js'
import type { ByteRange } from '../core/range.js'
import type { Op } from '../core/registry.js'
import { UpstreamUnavailableError, isUpstreamFailure, type Upstream } from '../upstream/upstream.js'

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  failures: number
  cooldownMs: number
  onStateChange?: (state: CircuitState) => void
  now?: () => number
}

export class BreakerUpstream implements Upstream {
  readonly name: string
  private state: CircuitState = 'closed'
  private consecutiveFailures = 0
  private openedAt = 0
  private probing = false

  constructor(
    private readonly inner: Upstream,
    private readonly options: BreakerOptions,
  ) {
    this.name = inner.name
  }

  get circuit(): CircuitState {
    return this.state
  }

  resolve(repo: string, reference: string, op?: Op) {
    return this.guard(() => this.inner.resolve(repo, reference, op))
  }

  getManifest(repo: string, reference: string, op?: Op) {
    return this.guard(() => this.inner.getManifest(repo, reference, op))
  }

  statBlob(repo: string, digest: Digest, op?: Op) {
    return this.guard(() => this.inner.statBlob(repo, digest, op))
  }

  // A blob counts as healthy once its headers arrived; a body that fails later is the fill's problem.
  openBlob(repo: string, digest: Digest, options?: { range?: ByteRange } & Op) {
    return this.guard(() => this.inner.openBlob(repo, digest, options))
  }

  listTags(repo: string, op?: Op) {
    return this.guard(() => this.inner.listTags(repo, op))
  }

  private async guard<T>(call: () => Promise<T>): Promise<T> {
    const now = this.options.now ?? Date.now
    if (this.state === 'open') {
      if (now() - this.openedAt < this.options.cooldownMs) throw this.openError()
      this.transition('half-open')
    }
    if (this.state === 'half-open') {
      if (this.probing) throw this.openError()
      this.probing = true
    }
    try {
      const result = await call()
      this.consecutiveFailures = 0
      if (this.state !== 'closed') this.transition('closed')
      return result
    } catch (err) {
      if (isUpstreamFailure(err) && err.credentialsRefused) {
        this.consecutiveFailures = 0
        if (this.state !== 'closed') this.transition('closed')
      } else if (isUpstreamFailure(err)) {
        this.consecutiveFailures++
        if (this.state === 'half-open' || this.consecutiveFailures >= this.options.failures) {
          this.openedAt = now()
          this.transition('open')
        }
      }
      throw err
    } finally {
      this.probing = false
    }
  }

  private transition(state: CircuitState): void {
    this.state = state
    this.options.onStateChange?.(state)
  }

  private openError(): UpstreamUnavailableError {
    return new UpstreamUnavailableError(this.name, 'UNAVAILABLE', `upstream ${this.name} is unavailable (circuit open)`, undefined, {
      headers: { 'retry-after': String(Math.ceil(this.options.cooldownMs / 1000)) },
    })
  }
}
