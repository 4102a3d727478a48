// The HTTP counters bumped on every request, summed in plain numbers and added to their prom-client
// counters whenever those are read (a scrape, the status page), so every read is exact. A
// labelled inc() hashes and validates its labels on each call: these four were
// ~2.5 % of a warm manifest GET's CPU (#18).
import type { Counter } from 'prom-client'

export interface RequestCounters {
  requests: Counter<'route' | 'method' | 'status'>
  sent: Counter<'route'>
  kernel: Counter<'route'>
  received: Counter<'route'>
}

interface StatusCount {
  readonly labels: { route: string; method: string; status: string }
  count: number
}

interface RouteCount {
  /** Requests since the last flush: a route with none adds nothing to the byte counters. */
  requests: number
  sent: number
  received: number
  kernel: number
  /** method → status code → count. */
  readonly statuses: Map<string, Map<number, StatusCount>>
}

export class RequestCounts {
  /** Route label → what was counted since the last flush (entries stay: routes are a small fixed set). */
  readonly #routes = new Map<string, RouteCount>()

  constructor(private readonly counters: RequestCounters) {}

  add(route: string, method: string, status: number, sent: number, received: number, kernel: number): void {
    let counts = this.#routes.get(route)
    if (counts === undefined) {
      counts = { requests: 0, sent: 0, received: 0, kernel: 0, statuses: new Map() }
      this.#routes.set(route, counts)
    }
    counts.requests++
    counts.sent += sent
    counts.received += received
    counts.kernel += kernel
    let byStatus = counts.statuses.get(method)
    if (byStatus === undefined) {
      byStatus = new Map()
      counts.statuses.set(method, byStatus)
    }
    const entry = byStatus.get(status)
    if (entry === undefined) byStatus.set(status, { labels: { route, method, status: String(status) }, count: 1 })
    else entry.count++
  }

  /** Adds what was counted since the last flush to the prom-client counters. */
  flush(): void {
    const { requests, sent, kernel, received } = this.counters
    for (const [route, counts] of this.#routes) {
      if (counts.requests === 0) continue
      for (const byStatus of counts.statuses.values()) {
        for (const entry of byStatus.values()) {
          if (entry.count === 0) continue
          requests.inc(entry.labels, entry.count)
          entry.count = 0
        }
      }
      const labels = { route }
      sent.inc(labels, counts.sent)
      if (counts.kernel > 0) kernel.inc(labels, counts.kernel)
      received.inc(labels, counts.received)
      counts.requests = 0
      counts.sent = 0
      counts.received = 0
      counts.kernel = 0
    }
  }
}
