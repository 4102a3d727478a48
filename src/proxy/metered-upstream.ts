// An Upstream decorator that counts every call by outcome and times it; labels are the
// configured upstream name and the operation, both small fixed sets.
import type { Digest } from '../core/digest.js'
import type { ByteRange } from '../core/range.js'
import type { Op } from '../core/registry.js'
import type { Metrics } from '../observability/metrics.js'
import type { Upstream } from '../upstream/upstream.js'

export class MeteredUpstream implements Upstream {
  readonly name: string

  constructor(
    private readonly inner: Upstream,
    private readonly metrics: Metrics,
  ) {
    this.name = inner.name
  }

  resolve(repo: string, reference: string, op?: Op) {
    return this.measure('resolve', () => this.inner.resolve(repo, reference, op))
  }

  getManifest(repo: string, reference: string, op?: Op) {
    return this.measure('manifest', () => this.inner.getManifest(repo, reference, op))
  }

  statBlob(repo: string, digest: Digest, op?: Op) {
    return this.measure('blob_head', () => this.inner.statBlob(repo, digest, op))
  }

  openBlob(repo: string, digest: Digest, options?: { range?: ByteRange } & Op) {
    return this.measure('blob', () => this.inner.openBlob(repo, digest, options))
  }

  listTags(repo: string, op?: Op) {
    return this.measure('tags', () => this.inner.listTags(repo, op))
  }

  private async measure<T>(operation: string, call: () => Promise<T>): Promise<T> {
    const stop = this.metrics.upstreamDuration.startTimer({ upstream: this.name, operation })
    try {
      const result = await call()
      this.metrics.upstreamRequests.inc({ upstream: this.name, operation, outcome: result === undefined ? 'not_found' : 'ok' })
      return result
    } catch (err) {
      this.metrics.upstreamRequests.inc({ upstream: this.name, operation, outcome: 'error' })
      throw err
    } finally {
      stop()
    }
  }
}
