// Every metric Ferry exports, defined in one place on a per-app registry (two apps in one
// process never share counters). Labels are small fixed sets: never names or digests.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export class Metrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'ferry_http_requests_total',
    help: 'HTTP requests answered, by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
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
  })

  readonly bytesReceived = new Counter({
    name: 'ferry_http_received_bytes_total',
    help: 'Bytes read from clients, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  })

  readonly uploadsPurged = new Counter({
    name: 'ferry_uploads_purged_total',
    help: 'Abandoned upload sessions removed by the periodic purge',
    registers: [this.registry],
  })

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ferry_' })
  }
}
