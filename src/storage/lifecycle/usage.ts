// Who holds which stored bytes, from an inventory: a blob a pushed repository references or links
// is pushed content (never evicted); one only cached repositories reference is cached content,
// counted under every upstream whose cache references it; the rest is unreferenced (GC's).
import type { Digest } from '../../core/digest.js'
import type { Inventory, RepositoryEntry } from './inventory.js'

export interface Usage {
  pushedBytes: number
  cachedBytes: number
  /** A blob several upstreams' caches share counts under each. */
  cachedByUpstream: Map<string, number>
  unreferencedBytes: number
  /** Per namespace (the first name component; the upstream for cached content) and kind. */
  byNamespace: Map<string, { kind: 'pushed' | 'cached'; bytes: number }>
}

/** Digests of the store a repository holds on to: its manifests, what they reference, its blob links. */
export function heldBy(repo: RepositoryEntry): Set<Digest> {
  const held = new Set<Digest>(repo.layers)
  for (const manifest of repo.manifests.values()) {
    held.add(manifest.digest)
    for (const digest of manifest.blobs) held.add(digest)
    for (const digest of manifest.children) held.add(digest)
  }
  return held
}

export function measureUsage(inventory: Inventory): Usage {
  const pushed = new Set<Digest>()
  const cachedBy = new Map<string, Set<Digest>>()
  const namespaces = new Map<string, { kind: 'pushed' | 'cached'; digests: Set<Digest> }>()
  for (const repo of inventory.repositories) {
    const held = heldBy(repo)
    const namespace = repo.upstream ?? repo.name.split('/')[0]!
    const key = repo.upstream === undefined ? namespace : `${namespace} (cache)`
    const entry = namespaces.get(key) ?? { kind: repo.upstream === undefined ? 'pushed' : 'cached', digests: new Set() }
    namespaces.set(key, entry)
    for (const digest of held) entry.digests.add(digest)
    if (repo.upstream === undefined) {
      for (const digest of held) pushed.add(digest)
    } else {
      const set = cachedBy.get(repo.upstream) ?? new Set()
      cachedBy.set(repo.upstream, set)
      for (const digest of held) set.add(digest)
    }
  }
  const sizeOf = (digest: Digest): number => inventory.blobs.get(digest)?.size ?? 0
  const usage: Usage = {
    pushedBytes: 0,
    cachedBytes: 0,
    cachedByUpstream: new Map(),
    unreferencedBytes: 0,
    byNamespace: new Map(),
  }
  const cachedAll = new Set<Digest>()
  for (const [upstream, digests] of cachedBy) {
    let bytes = 0
    for (const digest of digests) {
      if (pushed.has(digest)) continue
      bytes += sizeOf(digest)
      cachedAll.add(digest)
    }
    usage.cachedByUpstream.set(upstream, bytes)
  }
  for (const digest of pushed) usage.pushedBytes += sizeOf(digest)
  for (const digest of cachedAll) usage.cachedBytes += sizeOf(digest)
  for (const [digest, blob] of inventory.blobs) if (!pushed.has(digest) && !cachedAll.has(digest)) usage.unreferencedBytes += blob.size
  for (const [namespace, { kind, digests }] of namespaces) {
    let bytes = 0
    for (const digest of digests) bytes += sizeOf(digest)
    usage.byNamespace.set(namespace, { kind, bytes })
  }
  return usage
}
