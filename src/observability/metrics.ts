// Every metric Ferry exports, defined in one place on a per-app registry (two apps in one
// process never share counters). Labels are small fixed sets: never names or digests.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { RequestCounts } from './request-counts.js'

/** What ferry_blob_block_memory_bytes reports (transfer/shared-blocks.ts's BlockBudget). */
export interface BlockMemory {
  readonly held: number
  readonly peak: number
  readonly budget: number
}

export class Metrics {
  readonly registry = new Registry()
  #blockBudget: BlockMemory | undefined

  /** The block budget composition created, reported on every scrape. */
  reportBlockMemory(budget: BlockMemory): void {
    this.#blockBudget = budget
  }

  readonly httpRequests = new Counter({
    name: 'ferry_http_requests_total',
    help: 'HTTP requests answered, by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
    // Summed per request in requestCounts, added here when read.
    collect: (): void => this.requestCounts.flush(),
  })

  readonly httpDuration = new Histogram({
    name: 'ferry_http_request_duration_seconds',
    help: 'Time from request to the last byte of the response, by route and method',
    labelNames: ['route', 'method'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  })

  readonly bytesSent = new Counter({
    name: 'ferry_http_sent_bytes_total',
    help: 'Bytes written to clients, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
    // Summed per request in requestCounts, added here when read.
    collect: (): void => this.requestCounts.flush(),
  })

  readonly sendfileBytes = new Counter({
    name: 'ferry_http_sendfile_bytes_total',
    help: 'Bytes of blob bodies the kernel sent with sendfile(2), by route (part of ferry_http_sent_bytes_total)',
    labelNames: ['route'] as const,
    registers: [this.registry],
    // Summed per request in requestCounts, added here when read.
    collect: (): void => this.requestCounts.flush(),
  })

  readonly bytesReceived = new Counter({
    name: 'ferry_http_received_bytes_total',
    help: 'Bytes read from clients, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
    // Summed per request in requestCounts, added here when read.
    collect: (): void => this.requestCounts.flush(),
  })

  /** Where a request's counts go (request-observer.ts): the four counters above, exact whenever read. */
  readonly requestCounts: RequestCounts = new RequestCounts({
    requests: this.httpRequests,
    sent: this.bytesSent,
    kernel: this.sendfileBytes,
    received: this.bytesReceived,
  })

  readonly uploadsPurged = new Counter({
    name: 'ferry_uploads_purged_total',
    help: 'Abandoned upload sessions removed by the periodic purge',
    registers: [this.registry],
  })

  readonly s3Requests = new Counter({
    name: 'ferry_storage_s3_requests_total',
    help: 'Requests sent to the S3 store (retries included), by S3 operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  })

  readonly cacheLookups = new Counter({
    name: 'ferry_mirror_cache_lookups_total',
    help: 'Mirror lookups by kind (blob, manifest, tag) and result (local, hit, miss, stale)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  })

  readonly coalescedWaiters = new Counter({
    name: 'ferry_mirror_coalesced_waiters_total',
    help: 'Requests that joined an upstream fetch already in flight instead of starting one',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  readonly staleServes = new Counter({
    name: 'ferry_mirror_stale_serves_total',
    help: 'Answers served from cache because the upstream could not be asked, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  readonly fillsInFlight = new Gauge({
    name: 'ferry_mirror_blob_fills_in_flight',
    help: 'Blob downloads from upstreams currently in progress',
    registers: [this.registry],
  })

  readonly blockMemory = new Gauge({
    name: 'ferry_blob_block_memory_bytes',
    help: 'Memory of the 1 MiB blocks blob downloads and mirror fills share (in flight or kept, process-wide): held now, the most held since start, and the fixed budget',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect: () => {
      const budget = this.#blockBudget
      if (!budget) return
      this.blockMemory.set({ kind: 'held' }, budget.held)
      this.blockMemory.set({ kind: 'peak' }, budget.peak)
      this.blockMemory.set({ kind: 'budget' }, budget.budget)
    },
  })

  readonly upstreamRequests = new Counter({
    name: 'ferry_upstream_requests_total',
    help: 'Calls to upstream registries by upstream, operation and outcome (ok, not_found, error)',
    labelNames: ['upstream', 'operation', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly upstreamDuration = new Histogram({
    name: 'ferry_upstream_request_duration_seconds',
    help: 'Time until an upstream answered (headers for blobs), by upstream and operation',
    labelNames: ['upstream', 'operation'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  })

  readonly upstreamBytes = new Counter({
    name: 'ferry_upstream_received_bytes_total',
    help: 'Blob bytes received from upstream registries',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  })

  readonly upstreamTransportReloads = new Counter({
    name: 'ferry_upstream_transport_reload_total',
    help: "Re-reads of an upstream's CA bundle and client certificate that changed something, by upstream and result (ok, error: the previous transport is kept)",
    labelNames: ['upstream', 'result'] as const,
    registers: [this.registry],
  })

  readonly breakerState = new Gauge({
    name: 'ferry_upstream_circuit_state',
    help: 'Circuit breaker per upstream: 0 closed, 1 open (failing fast), 2 half-open (probing)',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  })

  readonly tlsCertificateExpiry = new Gauge({
    name: 'ferry_tls_certificate_expiry_seconds',
    help: 'When the serving TLS certificate expires (its notAfter), as a Unix time in seconds',
    registers: [this.registry],
  })

  readonly tlsReloads = new Counter({
    name: 'ferry_tls_reload_total',
    help: 'TLS certificate reload attempts that changed something, by result (ok, error: the previous certificate is kept)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  })

  readonly failedLogins = new Counter({
    name: 'ferry_auth_failed_logins_total',
    help: 'Failed logins: wrong user name or password (Basic or token endpoint), bad refresh tokens',
    registers: [this.registry],
  })

  readonly tokensIssued = new Counter({
    name: 'ferry_auth_tokens_issued_total',
    help: 'Access tokens issued by the /token endpoint',
    registers: [this.registry],
  })

  readonly credentialReloads = new Counter({
    name: 'ferry_auth_reloads_total',
    help: 'Re-reads of the htpasswd file and the token key file, by file and outcome (ok, error)',
    labelNames: ['file', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly upstreamCredentialReloads = new Counter({
    name: 'ferry_upstream_credentials_reload_total',
    help: 'Re-reads of upstream credential files (service-account keys, Docker config.json) that changed something, by upstream and result (ok, error: the previous credentials are kept)',
    labelNames: ['upstream', 'result'] as const,
    registers: [this.registry],
  })

  readonly imports = new Gauge({
    name: 'ferry_imports',
    help: 'Server-side bundle imports this process ran or resumed since it started, by state (reading, importing, done, partial, failed, cancelled)',
    labelNames: ['state'] as const,
    registers: [this.registry],
  })

  readonly importBytes = new Counter({
    name: 'ferry_import_read_bytes_total',
    help: 'Bytes of bundles read by server-side imports (as sent, before decompression)',
    registers: [this.registry],
  })

  readonly importImages = new Counter({
    name: 'ferry_import_images_total',
    help: 'Images of server-side imports, by result (pushed, unchanged, failed, skipped)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  })

  // Storage lifecycle (src/storage/lifecycle/): quota, eviction, GC, scrub, a full volume.
  readonly storageBytes = new Gauge({
    name: 'ferry_storage_bytes',
    help: 'Bytes stored as last measured, by kind (pushed, cached, unreferenced) and upstream ("" unless cached)',
    labelNames: ['kind', 'upstream'] as const,
    registers: [this.registry],
  })

  readonly storageFreeBytes = new Gauge({
    name: 'ferry_storage_free_bytes',
    help: 'Free bytes on the storage volume (filesystem driver)',
    registers: [this.registry],
  })

  readonly storageFull = new Gauge({
    name: 'ferry_storage_full',
    help: '1 while writes fail for lack of space (ENOSPC, EDQUOT), else 0',
    registers: [this.registry],
  })

  readonly fillsUnstored = new Counter({
    name: 'ferry_mirror_blob_fills_unstored_total',
    help: 'Blob fills streamed to their clients but not cached because storage was full, by upstream',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  })

  readonly cacheEvictions = new Counter({
    name: 'ferry_cache_evictions_total',
    help: 'Cached images evicted to keep the cache within its quota (or to free a full volume), by upstream',
    labelNames: ['upstream'] as const,
    registers: [this.registry],
  })

  readonly cacheEvictedBytes = new Counter({
    name: 'ferry_cache_evicted_bytes_total',
    help: 'Bytes eviction released from the cache',
    registers: [this.registry],
  })

  readonly gcRuns = new Counter({
    name: 'ferry_gc_runs_total',
    help: 'Garbage collections, by result (ok, error)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  })

  readonly gcFreedBytes = new Counter({
    name: 'ferry_gc_freed_bytes_total',
    help: 'Bytes of unreferenced blobs garbage collection deleted',
    registers: [this.registry],
  })

  readonly scrubCorrupt = new Counter({
    name: 'ferry_scrub_corrupt_total',
    help: 'Corrupt blobs and manifests scrub found and quarantined, by kind (pushed: lost; cached: fetched again; unreferenced)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ferry_' })
  }
}
