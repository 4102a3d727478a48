// What the status page shows an operator first, derived from the metrics Ferry already keeps (so
// the page and /metrics never disagree) plus a few facts only composition knows: the upstreams as
// configured now, the storage driver and its free space, the version.
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { Metrics } from './metrics.js'

export interface StatusFacts {
  version: string
  startedAt: Date
  /** The upstreams of the mirror as configured now (a reloaded config changes them). */
  upstreams(): readonly { name: string; url: string }[]
  /** The storage driver's name and, where it can tell, the volume's free and total bytes. */
  storage(): Promise<StorageStatus>
}

export interface StorageStatus {
  driver: string
  freeBytes?: number
  totalBytes?: number
}

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface UpstreamStatus {
  name: string
  url: string
  circuit: CircuitState
  requests: { ok: number; notFound: number; error: number }
  receivedBytes: number
}

export interface StatusReport {
  version: string
  startedAt: string
  uptimeSeconds: number
  upstreams: UpstreamStatus[]
  cache: {
    /** Mirror lookups answered without a fetch of their own (from the cache, fresh or stale, or by joining a fetch in flight) and those that went upstream. */
    hits: number
    misses: number
    staleServes: number
    /** hits / (hits + misses); null before the first mirrored lookup. */
    hitRatio: number | null
    /** Blob bytes sent to clients, bytes received from upstreams, and the difference the cache saved. */
    blobBytesServed: number
    upstreamBytesFetched: number
    bytesSaved: number
  }
  storage: StorageStatus
  /** The serving certificate, when Ferry serves TLS. */
  tls: { expiresAt: string; daysLeft: number } | null
}

const circuitNames: Record<number, CircuitState> = { 0: 'closed', 1: 'open', 2: 'half-open' }

export async function statusReport(metrics: Metrics, facts: StatusFacts, now: number = Date.now()): Promise<StatusReport> {
  const [lookups, coalesced, upstreamRequests, upstreamBytes, circuits, sent, expiry, storage] = await Promise.all([
    metrics.cacheLookups.get(),
    metrics.coalescedWaiters.get(),
    metrics.upstreamRequests.get(),
    metrics.upstreamBytes.get(),
    metrics.breakerState.get(),
    metrics.bytesSent.get(),
    metrics.tlsCertificateExpiry.get(),
    facts.storage(),
  ])
  // A request that joined a fetch in flight cost the upstream nothing either: it counts as a hit.
  const hits = sum(lookups, (labels) => labels.result === 'hit' || labels.result === 'stale') + sum(coalesced, () => true)
  const misses = sum(lookups, (labels) => labels.result === 'miss')
  const blobBytesServed = sum(sent, (labels) => labels.route === 'blob')
  const upstreamBytesFetched = sum(upstreamBytes, () => true)
  const expiresAt = expiry.values[0]?.value
  return {
    version: facts.version,
    startedAt: facts.startedAt.toISOString(),
    uptimeSeconds: Math.floor((now - facts.startedAt.getTime()) / 1000),
    upstreams: facts.upstreams().map(({ name, url }) => {
      const mine = (labels: MetricValue<string>['labels']) => labels.upstream === name
      return {
        name,
        url,
        circuit: circuitNames[circuits.values.find((value) => mine(value.labels))?.value ?? 0] ?? 'closed',
        requests: {
          ok: sum(upstreamRequests, (labels) => mine(labels) && labels.outcome === 'ok'),
          notFound: sum(upstreamRequests, (labels) => mine(labels) && labels.outcome === 'not_found'),
          error: sum(upstreamRequests, (labels) => mine(labels) && labels.outcome === 'error'),
        },
        receivedBytes: sum(upstreamBytes, mine),
      }
    }),
    cache: {
      hits,
      misses,
      staleServes: sum(lookups, (labels) => labels.result === 'stale'),
      hitRatio: hits + misses === 0 ? null : hits / (hits + misses),
      blobBytesServed,
      upstreamBytesFetched,
      bytesSaved: Math.max(0, blobBytesServed - upstreamBytesFetched),
    },
    storage,
    tls:
      expiresAt === undefined || expiresAt === 0
        ? null
        : { expiresAt: new Date(expiresAt * 1000).toISOString(), daysLeft: Math.floor((expiresAt * 1000 - now) / 86_400_000) },
  }
}

function sum(metric: MetricObjectWithValues<MetricValue<string>>, keep: (labels: MetricValue<string>['labels']) => boolean): number {
  return metric.values.reduce((total, { labels, value }) => (keep(labels) ? total + value : total), 0)
}
