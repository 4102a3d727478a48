// Builds the pull-through mirror from config: one metered, circuit-broken client per upstream,
// a cache registry beside the local one on the same storage, and the routing table.
import type { Logger } from 'pino'
import type { Registry } from './core/registry.js'
import type { MirrorConfig } from './config/schema.js'
import type { Metrics } from './observability/metrics.js'
import { openMirrorCredentials } from './mirror-credentials.js'
import { BreakerUpstream, type CircuitState } from './proxy/circuit-breaker.js'
import { MeteredUpstream } from './proxy/metered-upstream.js'
import { MirrorContext, type MirrorUpstream } from './proxy/mirror-context.js'
import { MirrorRegistry } from './proxy/mirror-registry.js'
import { RegistryUpstream } from './upstream/registry-upstream.js'
import { routeTable } from './upstream/routing.js'
import { UpstreamTransport } from './upstream/upstream-transport.js'

const circuitValue: Record<CircuitState, number> = { closed: 0, open: 1, 'half-open': 2 }

export interface Mirror {
  registry: Registry
  /** Re-reads the upstream credential files now (SIGHUP); watched files are re-read anyway. Never rejects. */
  reloadCredentials(): Promise<void>
  /** Lets blob downloads in flight finish (up to `timeoutMs`), then releases upstream connections. */
  close(timeoutMs: number): Promise<void>
  /** Re-reads every upstream's CA bundle and client certificate (SIGHUP); never rejects. */
  reloadTransports(reason: string): Promise<void>
}

/** Rejects, naming upstream and file, when a credential file the config names is unusable. */
export async function composeMirror(config: MirrorConfig, local: Registry, cache: Registry, metrics: Metrics, logger: Logger): Promise<Mirror> {
  // Read first: an unusable key file stops start-up before any connection is made. The
  // transports exist by the time a token_uri exchange needs one (transports[i] is upstreams[i]).
  const credentials = await openMirrorCredentials(config, metrics, logger, (name) => transports[config.upstreams.findIndex((u) => u.name === name)]?.source)
  const clients: RegistryUpstream[] = []
  const upstreams = new Map<string, MirrorUpstream>()
  // Throws TransportFileError for an unreadable or invalid CA / client certificate: start-up fails.
  const transports: UpstreamTransport[] = []
  for (const upstream of config.upstreams) {
    const transport = new UpstreamTransport({ upstream, index: transports.length, proxyDefaults: config.proxy, logger, metrics })
    transports.push(transport)
    transport.watch()
    const client = new RegistryUpstream({
      name: upstream.name,
      url: upstream.url,
      credentials: credentials.providers.get(upstream.name),
      transport: transport.source,
      timeouts: { connectMs: upstream.timeouts.connect, headersMs: upstream.timeouts.headers, bodyIdleMs: upstream.timeouts.bodyIdle },
      retries: { maxRetries: upstream.retries },
    })
    clients.push(client)
    metrics.breakerState.set({ upstream: upstream.name }, 0)
    const guarded = new BreakerUpstream(new MeteredUpstream(client, metrics), {
      failures: upstream.breaker.failures,
      cooldownMs: upstream.breaker.cooldown,
      onStateChange: (state) => {
        metrics.breakerState.set({ upstream: upstream.name }, circuitValue[state])
        logger.warn({ upstream: upstream.name, state }, 'upstream circuit changed')
      },
    })
    upstreams.set(upstream.name, { upstream: guarded, tagTtl: upstream.tagTtl })
    logger.info({ upstream: upstream.name, url: upstream.url, default: upstream.name === config.defaultUpstream }, 'mirroring upstream')
  }
  const context = new MirrorContext(cache, upstreams, metrics, logger)
  return {
    registry: new MirrorRegistry(local, context, routeTable(config)),
    reloadCredentials: () => credentials.reload(),
    async close(timeoutMs) {
      await context.drain(timeoutMs)
      await Promise.all(clients.map((client) => client.close()))
      await credentials.close()
      await Promise.all(transports.map((transport) => transport.close()))
    },
    async reloadTransports(reason) {
      await Promise.all(transports.map((transport) => transport.reload(reason)))
    },
  }
}
