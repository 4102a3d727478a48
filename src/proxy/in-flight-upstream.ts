// An Upstream decorator that knows when nothing is using it: calls in progress and blob bodies
// still streaming are counted, so an upstream replaced by a config reload is closed only once
// the downloads it carries have finished (requests that picked it just before the swap included).
import type { Digest } from '../core/digest.js'
import type { ByteRange } from '../core/range.js'
import type { Op } from '../core/registry.js'
import type { Upstream, UpstreamBlob } from '../upstream/upstream.js'

export class InFlightUpstream implements Upstream {
  readonly name: string
  #active = 0
  #waiters: Array<() => void> = []

  constructor(private readonly inner: Upstream) {
    this.name = inner.name
  }

  /** Calls and blob bodies in progress. */
  get active(): number {
    return this.#active
  }

  /** Resolves once no call is in progress and every blob body returned has closed. */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve()
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  resolve(repo: string, reference: string, op?: Op) {
    return this.#track(() => this.inner.resolve(repo, reference, op))
  }

  getManifest(repo: string, reference: string, op?: Op) {
    return this.#track(() => this.inner.getManifest(repo, reference, op))
  }

  statBlob(repo: string, digest: Digest, op?: Op) {
    return this.#track(() => this.inner.statBlob(repo, digest, op))
  }

  async openBlob(repo: string, digest: Digest, options?: { range?: ByteRange } & Op): Promise<UpstreamBlob | undefined> {
    this.#active++
    let blob: UpstreamBlob | undefined
    try {
      blob = await this.inner.openBlob(repo, digest, options)
    } finally {
      // The body keeps the connection busy until it closes (ended, failed or destroyed).
      if (blob === undefined || blob.stream.closed) this.#release()
      else blob.stream.once('close', () => this.#release())
    }
    return blob
  }

  listTags(repo: string, op?: Op) {
    return this.#track(() => this.inner.listTags(repo, op))
  }

  async #track<T>(call: () => Promise<T>): Promise<T> {
    this.#active++
    try {
      return await call()
    } finally {
      this.#release()
    }
  }

  #release(): void {
    this.#active--
    if (this.#active > 0) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}
