// The upstream as one blob fill sees it when replicas share a storage: the fill takes the
// content's lease first. Holding it, it downloads from the upstream; otherwise it streams from
// the replica that holds it (which serves its own fill as it grows), or finds the blob landed in
// the cache. If that source breaks mid-body (the holder died), the stream carries on from the
// byte it reached: from whoever holds the lease now, or from the upstream once this replica took
// it over. The fill hashes every byte whatever their source, so a splice is verified like any fill.
import { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import type { Digest } from '../core/digest.js'
import { RegistryError } from '../core/errors.js'
import type { FillCoordinator, FillLease } from '../core/fill-lease.js'
import type { ByteRange } from '../core/range.js'
import type { BlobService, Op } from '../core/registry.js'
import { UpstreamUnavailableError, type Upstream, type UpstreamBlob } from '../upstream/upstream.js'

/** The blob reached the cache while this replica waited for its lease: serve it from there. */
export class BlobLanded extends Error {
  constructor() {
    super('blob landed in the cache')
    this.name = 'BlobLanded'
  }
}

/** Lease waits without any progress, in lease lifetimes, before a fill gives up. */
const patienceInTtls = 4

export class LeasedUpstream implements Upstream {
  readonly name: string
  /** Whether the bytes arriving now come from the upstream (not from a peer or the cache): for the upstream byte count. */
  fromUpstream = false
  private lease: FillLease | undefined

  constructor(
    private readonly upstream: Upstream,
    private readonly coordinator: FillCoordinator,
    /** The lease key: the same on every replica for this content. */
    private readonly key: string,
    private readonly cache: BlobService,
  ) {
    this.name = upstream.name
  }

  resolve(...args: Parameters<Upstream['resolve']>): ReturnType<Upstream['resolve']> {
    return this.upstream.resolve(...args)
  }

  getManifest(...args: Parameters<Upstream['getManifest']>): ReturnType<Upstream['getManifest']> {
    return this.upstream.getManifest(...args)
  }

  statBlob(...args: Parameters<Upstream['statBlob']>): ReturnType<Upstream['statBlob']> {
    return this.upstream.statBlob(...args)
  }

  listTags(...args: Parameters<Upstream['listTags']>): ReturnType<Upstream['listTags']> {
    return this.upstream.listTags(...args)
  }

  /** Whether this replica holds the lease (it fills from the upstream, or took the fill over). */
  get holding(): boolean {
    return this.lease !== undefined
  }

  /** Gives the lease up; the fill calls it once the blob is committed (or the fill failed). */
  async release(): Promise<void> {
    const lease = this.lease
    this.lease = undefined
    await lease?.release()
  }

  async openBlob(repo: string, digest: Digest, options: { range?: ByteRange } & Op = {}): Promise<UpstreamBlob | undefined> {
    let size: number | undefined
    const first = await this.source(repo, digest, 0, (s) => (size = s))
    if (!first) return undefined
    if (first.fromUpstream || size === undefined) return first.blob
    const total = size
    const resume = async (offset: number): Promise<Readable> => {
      const next = await this.source(repo, digest, offset, () => {}, total)
      if (!next) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to upstream ${this.name}`, { digest })
      return next.blob.stream
    }
    void options // a fill reads the whole blob: ranges are served from it
    const landed = (): Promise<void> => this.landed(digest)
    return { size: total, stream: Readable.from(spliced(first.blob.stream, total, resume, landed), { objectMode: false }) }
  }

  /**
   * Holds the end of a followed stream until the holder's commit landed (or this replica took the
   * lease over), so this replica's fill finds the blob committed and does not write it again.
   */
  private async landed(digest: Digest): Promise<void> {
    const deadline = Date.now() + Math.max(patienceInTtls * this.coordinator.leaseTtlMs, 10_000)
    while (!this.lease && Date.now() < deadline) {
      if (await this.cache.stat(digest)) return
      const attempt = await this.coordinator.acquire(this.key)
      if (attempt.held) this.lease = attempt.lease
      else await delay(this.coordinator.retryMs)
    }
  }

  /**
   * The bytes from `offset` on, from wherever they are now. Loops while the lease is held by a
   * replica that cannot be followed (it died: its lease runs out), up to a few lease lifetimes.
   */
  private async source(
    repo: string,
    digest: Digest,
    offset: number,
    onSize: (size: number) => void,
    knownSize?: number,
  ): Promise<{ blob: UpstreamBlob; fromUpstream: boolean } | undefined> {
    const deadline = Date.now() + Math.max(patienceInTtls * this.coordinator.leaseTtlMs, 10_000)
    for (;;) {
      const attempt = await this.coordinator.acquire(this.key)
      if (attempt.held) {
        this.lease = attempt.lease
        const landed = await this.fromCache(digest, offset)
        if (landed) return { blob: landed, fromUpstream: false }
        const end = knownSize === undefined ? undefined : knownSize - 1
        const blob = await this.upstream.openBlob(repo, digest, offset === 0 || end === undefined ? {} : { range: { start: offset, end } })
        if (!blob) return undefined
        onSize(blob.size)
        this.fromUpstream = true
        // A 200 to a range request carries the whole blob: skip what the fill already has.
        const stream = offset > 0 && !blob.range ? Readable.from(skip(blob.stream, offset), { objectMode: false }) : blob.stream
        return { blob: { size: blob.size, stream }, fromUpstream: offset === 0 }
      }
      if (attempt.holder) {
        const peer = await this.coordinator.follow(attempt.holder, this.key, offset).catch(() => undefined)
        if (peer) {
          onSize(peer.size)
          return { blob: peer, fromUpstream: false }
        }
      }
      const landed = await this.fromCache(digest, offset)
      if (landed) return { blob: landed, fromUpstream: false }
      if (Date.now() > deadline) {
        throw new UpstreamUnavailableError(this.name, 'UNAVAILABLE', 'the replica filling this blob neither finished nor let go of it')
      }
      await delay(this.coordinator.retryMs)
    }
  }

  /** The blob from the cache (from `offset` on), if it landed; at offset 0 the fill has nothing to do. */
  private async fromCache(digest: Digest, offset: number): Promise<UpstreamBlob | undefined> {
    const info = await this.cache.stat(digest)
    if (!info) return undefined
    if (offset === 0) throw new BlobLanded()
    const body = await this.cache.open(digest, { range: { start: offset, end: info.size - 1 } })
    if (body.kind !== 'body') throw new RegistryError('UNKNOWN', 'cache answered a redirect')
    return { size: info.size, stream: body.stream }
  }
}

/**
 * `first`, and when a source breaks or ends short, the rest from `resume(offset)`, up to `size`
 * bytes; the stream ends once `settled()` resolved.
 */
async function* spliced(
  first: Readable,
  size: number,
  resume: (offset: number) => Promise<Readable>,
  settled: () => Promise<void>,
): AsyncGenerator<Buffer> {
  let offset = 0
  let source = first
  try {
    for (;;) {
      try {
        for await (const chunk of source as AsyncIterable<Buffer>) {
          const part = chunk.length > size - offset ? chunk.subarray(0, size - offset) : chunk
          offset += part.length
          yield part
          if (offset >= size) break
        }
      } catch {
        // The source broke: carry on from where it stopped.
      }
      if (offset >= size) {
        await settled()
        return
      }
      source.destroy()
      source = await resume(offset)
    }
  } finally {
    source.destroy()
  }
}

async function* skip(stream: Readable, bytes: number): AsyncGenerator<Buffer> {
  let left = bytes
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (left >= chunk.length) {
      left -= chunk.length
      continue
    }
    yield left > 0 ? chunk.subarray(left) : chunk
    left = 0
  }
}
