// Tags of a mirrored repository. Pushed tags are authoritative. A proxied tag → digest answer is
// reused for the upstream's tagTtl, then served stale while one upstream HEAD (which does not
// spend Docker Hub's pull budget) revalidates it; when the upstream is down or refuses our
// credentials, cached tags are served however old, and the response says so. A cold tag is
// resolved once across replicas sharing a lease store (as blobs and manifests by digest are).
import type { Digest } from '../core/digest.js'
import { isRegistryError } from '../core/errors.js'
import type { Descriptor } from '../core/manifest.js'
import { acceptsEveryManifestType, isManifestMediaType } from '../core/media-types.js'
import { compareLexically, paginate, type Page, type PageResult } from '../core/pagination.js'
import type { Op, TagService } from '../core/registry.js'
import { isServableFromCache } from '../upstream/upstream.js'
import { leasedFetch } from './leased-fetch.js'
import type { MirrorContext, TagEntry } from './mirror-context.js'
import { everyManifestType, type MirrorManifests } from './mirror-manifests.js'
import type { MirrorTarget } from './mirror-target.js'

export class MirrorTags implements TagService {
  constructor(
    private readonly local: TagService,
    private readonly target: MirrorTarget,
    private readonly context: MirrorContext,
    private readonly manifests: MirrorManifests,
  ) {}

  async resolve(tag: string, op: Op = {}): Promise<Descriptor | undefined> {
    const pushed = await this.local.resolve(tag, op)
    if (pushed || (await this.target.pushed())) return pushed
    const key = `${this.target.cache.name}:${tag}`
    const entry = await this.entry(tag, key)
    if (!entry) return this.fetch(tag, key, op.accept ?? [])
    if (this.context.now() - entry.validatedAt < this.target.tagTtl) {
      this.context.metrics.cacheLookups.inc({ kind: 'tag', result: 'hit' })
      return entry.descriptor
    }
    this.context.metrics.cacheLookups.inc({ kind: 'tag', result: 'stale' })
    if (entry.failure !== undefined) this.reportStale(op, entry.failure)
    void this.revalidate(tag, key, entry)
    return entry.descriptor
  }

  tag(tag: string, digest: Digest, op?: Op): Promise<void> {
    return this.local.tag(tag, digest, op)
  }

  untag(tag: string, op?: Op): Promise<void> {
    return this.local.untag(tag, op)
  }

  async list(page: Page, op: Op = {}): Promise<PageResult | undefined> {
    const pushed = await this.local.list(page, op)
    if (pushed) return pushed // a pushed repository lists its own tags only
    try {
      const tags = await this.target.upstream.listTags(this.target.repository, { accept: op.accept ?? [] })
      return tags ? paginate([...new Set(tags)].sort(compareLexically), page) : undefined
    } catch (err) {
      if (!isServableFromCache(err)) throw err
      const cached = await this.target.cache.tags.list(page, op)
      if (!cached) throw err
      this.reportStale(op, err.message)
      return cached
    }
  }

  /** The remembered answer for a tag: from memory, else from the cache store (then stale). */
  private async entry(tag: string, key: string): Promise<TagEntry | undefined> {
    const remembered = this.context.tags.get(key)
    if (remembered) return remembered
    const stored = await this.target.cache.tags.resolve(tag)
    if (!stored) return undefined
    const entry: TagEntry = { descriptor: stored, validatedAt: 0 }
    this.context.tags.set(key, entry)
    return entry
  }

  private async fetch(tag: string, key: string, accept: readonly string[]): Promise<Descriptor | undefined> {
    this.context.metrics.cacheLookups.inc({ kind: 'tag', result: 'miss' })
    // Only an answer to "anything" is the tag's canonical manifest; one negotiated down for a
    // narrow Accept list is served to that client but never remembered under the tag.
    const anything = acceptsEveryManifestType(accept)
    const canonical = anything || manifestTypesIn(accept) >= 4
    const fetch = async (): Promise<Descriptor | undefined> => {
      const descriptor = await this.manifests.fetchIntoCache(tag, anything ? everyManifestType : accept)
      if (descriptor && canonical) await this.remember(tag, key, descriptor)
      return descriptor
    }
    // Replicas on one storage resolve a cold tag once: one holds its lease and stores the tag,
    // the others find it in the cache.
    const coordinator = this.context.coordinator
    const descriptor =
      coordinator?.shared && canonical ? await leasedFetch(coordinator, `tag:${key}`, () => this.landed(tag, key), fetch) : await fetch()
    if (!descriptor) throw this.manifests.unknownUpstream({ tag })
    return descriptor
  }

  /** The tag as another replica just stored it (validated by that replica's fetch), if it did. */
  private async landed(tag: string, key: string): Promise<Descriptor | undefined> {
    const stored = await this.target.cache.tags.resolve(tag, { fresh: true })
    if (stored) this.context.tags.set(key, { descriptor: stored, validatedAt: this.context.now() })
    return stored
  }

  private revalidate(tag: string, key: string, entry: TagEntry): Promise<Descriptor | undefined> {
    return this.context.revalidations.run(key, async () => {
      const { upstream, repository } = this.target
      try {
        const current = await upstream.resolve(repository, tag, { accept: everyManifestType })
        if (!current) {
          // The upstream no longer has the tag: forget it rather than serve it forever.
          this.context.tags.delete(key)
          await this.target.cache.tags.untag(tag).catch(() => {})
          return undefined
        }
        const unchanged = current.digest === entry.descriptor.digest
        const descriptor = unchanged ? entry.descriptor : await this.manifests.fetchIntoCache(current.digest, everyManifestType)
        if (descriptor) await this.remember(tag, key, descriptor)
        return descriptor
      } catch (err) {
        const reason = isRegistryError(err) ? err.message : 'revalidation failed'
        this.context.tags.set(key, { ...entry, failure: reason })
        // The message, not the error: no stack trace in a line that repeats while the upstream refuses.
        this.context.logger.warn(
          { upstream: upstream.name, repo: repository, tag, error: reason },
          'tag revalidation failed, serving cached digest',
        )
        return entry.descriptor
      }
    })
  }

  private async remember(tag: string, key: string, descriptor: Descriptor): Promise<void> {
    await this.target.cache.tags.tag(tag, descriptor.digest)
    this.context.tags.set(key, { descriptor, validatedAt: this.context.now() })
  }

  private reportStale(op: Op, reason: string): void {
    this.context.metrics.staleServes.inc({ kind: 'tag' })
    op.notify?.({ kind: 'stale', upstream: this.target.upstream.name, reason })
  }
}

function manifestTypesIn(accept: readonly string[]): number {
  return accept.filter(isManifestMediaType).length
}
