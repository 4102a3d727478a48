// The pull-through registry: a decorator over the local (pushed) registry that routes each
// repository to its upstream and cache. Local content shadows the upstream; writes stay local.
import type { Page, PageResult } from '../core/pagination.js'
import type { RepositoryName } from '../core/reference.js'
import type { Op, Registry, Repository } from '../core/registry.js'
import { resolveRoute } from '../upstream/routing.js'
import { MirrorBlobs } from './mirror-blobs.js'
import type { MirrorContext } from './mirror-context.js'
import { MirrorManifests } from './mirror-manifests.js'
import { MirrorTags } from './mirror-tags.js'

export class MirrorRegistry implements Registry {
  constructor(
    private readonly local: Registry,
    private readonly context: MirrorContext,
  ) {}

  repository(name: RepositoryName, op?: Op): Repository {
    // One snapshot per request: a reload in between cannot mix old routes with new upstreams.
    const routes = this.context.routes()
    const route = resolveRoute(routes.table, name, op?.ns)
    const local = this.local.repository(route.localName)
    if (!route.upstream) return local
    const mirrored = routes.upstreams.get(route.upstream.name)
    if (!mirrored) throw new Error(`no upstream named ${route.upstream.name}`) // a table names only its own set's upstreams
    const { upstream, tagTtl } = mirrored
    let pushed: Promise<boolean> | undefined
    const target = {
      upstream,
      repository: route.upstream.repository,
      cache: this.context.cache.repository(route.upstream.cacheName),
      tagTtl,
      // Asked at most once per request: tags.list knows whether the repository exists locally.
      pushed: () => (pushed ??= local.tags.list({ n: 0 }).then((page) => page !== undefined)),
    }
    const blobs = new MirrorBlobs(local.blobs, target, this.context)
    const manifests = new MirrorManifests(local.manifests, blobs, local.blobs, target, this.context)
    return {
      name: route.localName,
      blobs,
      manifests,
      tags: new MirrorTags(local.tags, target, this.context, manifests),
      mirror: { upstreamName: route.upstream.cacheName, upstream: route.upstream.name, pushed: target.pushed },
    }
  }

  /** The catalog lists what was pushed; cached upstream repositories are not this registry's. */
  catalog(page: Page, op?: Op): Promise<PageResult> {
    return this.local.catalog(page, op)
  }
}
