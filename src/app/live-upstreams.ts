// The mirror's upstreams (client, transport, credentials, breaker, metrics) and route table as
// one set that a config reload replaces while serving. An upstream whose settings did not change
// keeps its client, and with it its token cache, connections and circuit state; a new or changed
// one is built afresh. Requests read one snapshot of the set, so a swap is atomic for them; a
// replaced or removed upstream is closed once the calls and downloads it carries have finished,
// or after `retireTimeoutMs`.
import { isDeepStrictEqual } from 'node:util'
import type { Logger } from 'pino'
import type { MirrorConfig, UpstreamConfig } from '../config/schema.js'
import { openMirrorCredentials, type MirrorCredentials } from './upstream-credential-files.js'
import type { Metrics } from '../observability/metrics.js'
import { BreakerUpstream, type CircuitState } from '../proxy/circuit-breaker.js'
import { InFlightUpstream } from '../proxy/in-flight-upstream.js'
import { MeteredUpstream } from '../proxy/metered-upstream.js'
import type { MirrorRoutes, MirrorUpstream } from '../proxy/mirror-context.js'
import { RegistryUpstream } from '../upstream/registry-upstream.js'
import { routeTable } from '../upstream/routing.js'
import { UpstreamTransport } from '../upstream/upstream-transport.js'

const circuitValue: Record<CircuitState, number> = { closed: 0, open: 1, 'half-open': 2 }

/** Everything that decides how one upstream is reached: equal settings, same client. */
function settingsOf(upstream: UpstreamConfig, config: MirrorConfig): unknown {
  return {
    upstream,
    // The mirror-wide keys as they apply to this upstream.
    proxyDefaults: upstream.proxy.kind === 'default' ? config.proxy : undefined,
    credentialConfig:
      upstream.gcrKeyPath === undefined ? (upstream.pullCredentialConfigPath ?? config.pullCredentialConfigPath) : undefined,
  }
}

/** One upstream's client and what it owns; the credentials are shared with its build batch. */
class BuiltUpstream {
  /** Set when a reload replaced or removed it: its circuit no longer speaks for the name. */
  retired = false
  #closing: Promise<void> | undefined

  constructor(
    readonly settings: unknown,
    readonly entry: MirrorUpstream,
    readonly tracked: InFlightUpstream,
    private readonly client: RegistryUpstream,
    readonly transport: UpstreamTransport,
    readonly batch: CredentialBatch,
  ) {}

  /** Idempotent: closes connections, and the batch's credentials with its last upstream. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.client.close()
      await this.transport.close()
      if (--this.batch.open === 0) await this.batch.credentials.close()
    })()
    return this.#closing
  }
}

/** The credential files opened for the upstreams built in one go, closed with the last of them. */
interface CredentialBatch {
  credentials: MirrorCredentials
  open: number
}

interface UpstreamSet {
  config: MirrorConfig
  routes: MirrorRoutes
  built: Map<string, BuiltUpstream>
}

export interface MirrorUpstreamsOptions {
  metrics: Metrics
  logger: Logger
  /** Longest wait for a replaced upstream's downloads before its connections are closed anyway. */
  retireTimeoutMs: number
  /** Called for each upstream a reload replaced or removed, once new requests no longer reach it. */
  onReplaced?: (upstream: string) => void
}

export class MirrorUpstreams {
  readonly #options: MirrorUpstreamsOptions
  #current: UpstreamSet
  readonly #retiring = new Set<BuiltUpstream>()
  #applying: Promise<void> = Promise.resolve()
  #closed = false

  private constructor(set: UpstreamSet, options: MirrorUpstreamsOptions) {
    this.#current = set
    this.#options = options
  }

  /** Rejects, naming upstream and file, when a credential, CA or certificate file is unusable. */
  static async start(config: MirrorConfig, options: MirrorUpstreamsOptions): Promise<MirrorUpstreams> {
    return new MirrorUpstreams(await buildSet(config, new Map(), options), options)
  }

  /** What requests route by now. */
  routes(): MirrorRoutes {
    return this.#current.routes
  }

  /**
   * Applies a re-read `mirror` section. Equal settings change nothing. A set that cannot be
   * built (an unusable key, CA or certificate file) keeps the running one and logs one error
   * naming the file. Never rejects.
   */
  apply(next: MirrorConfig): Promise<void> {
    this.#applying = this.#applying.then(() => this.#apply(next))
    return this.#applying
  }

  /** Re-reads every upstream's credential files now (SIGHUP). Never rejects. */
  async reloadCredentials(): Promise<void> {
    await Promise.all([...batchesOf(this.#current.built.values())].map((batch) => batch.credentials.reload()))
  }

  /** Re-reads every upstream's CA bundle and client certificate. Never rejects. */
  async reloadTransports(reason: string): Promise<void> {
    await Promise.all([...this.#current.built.values()].map((b) => b.transport.reload(reason)))
  }

  /** After the drain at shutdown: closes every upstream, replaced ones still draining included. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#applying
    await Promise.all([...this.#current.built.values(), ...this.#retiring].map((b) => b.close()))
  }

  async #apply(next: MirrorConfig): Promise<void> {
    const { logger, metrics } = this.#options
    const old = this.#current
    if (this.#closed || isDeepStrictEqual(old.config, next)) return
    let set: UpstreamSet
    try {
      set = await buildSet(next, old.built, this.#options)
    } catch (err) {
      logger.error(
        { error: err instanceof Error ? err.message : String(err) },
        'mirror settings not applied, keeping the running upstreams',
      )
      return
    }
    this.#current = set
    const replaced = [...old.built].filter(([name, b]) => set.built.get(name) !== b)
    for (const [name, built] of replaced) {
      built.retired = true
      if (!set.built.has(name)) metrics.breakerState.remove({ upstream: name })
      this.#options.onReplaced?.(name)
    }
    logger.info(
      { upstreams: [...set.built.keys()], replaced: replaced.map(([name]) => name), defaultUpstream: next.defaultUpstream },
      'mirror settings applied; new requests use them',
    )
    for (const [, built] of replaced) void this.#retire(built)
  }

  async #retire(built: BuiltUpstream): Promise<void> {
    this.#retiring.add(built)
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), this.#options.retireTimeoutMs)
      timer.unref()
    })
    const drained = await Promise.race([built.tracked.idle().then(() => true), deadline])
    clearTimeout(timer)
    if (!drained) {
      this.#options.logger.warn(
        { upstream: built.tracked.name, inFlight: built.tracked.active, ms: this.#options.retireTimeoutMs },
        'replaced upstream still busy, closing its connections',
      )
    }
    await built
      .close()
      .catch((err: unknown) => this.#options.logger.warn({ upstream: built.tracked.name, err }, 'closing a replaced upstream failed'))
    this.#retiring.delete(built)
  }
}

function batchesOf(built: Iterable<BuiltUpstream>): Set<CredentialBatch> {
  return new Set([...built].map((b) => b.batch))
}

/**
 * Builds the set for `config`, reusing from `previous` every upstream whose settings are equal.
 * Throws (closing what it opened) when a credential, CA or certificate file is unusable.
 */
async function buildSet(
  config: MirrorConfig,
  previous: ReadonlyMap<string, BuiltUpstream>,
  options: MirrorUpstreamsOptions,
): Promise<UpstreamSet> {
  const { metrics, logger } = options
  const built = new Map<string, BuiltUpstream>()
  const fresh: Array<{ upstream: UpstreamConfig; index: number }> = []
  config.upstreams.forEach((upstream, index) => {
    const kept = previous.get(upstream.name)
    if (kept !== undefined && isDeepStrictEqual(kept.settings, settingsOf(upstream, config))) built.set(upstream.name, kept)
    else fresh.push({ upstream, index })
  })
  if (fresh.length > 0) {
    // Read first: an unusable key file stops here before any connection is made. The transports
    // exist by the time a token_uri exchange needs one.
    const transports = new Map<string, UpstreamTransport>()
    const credentials = await openMirrorCredentials(
      { ...config, upstreams: fresh.map((f) => f.upstream) },
      metrics,
      logger,
      (name) => transports.get(name)?.source,
    )
    const batch: CredentialBatch = { credentials, open: 0 }
    try {
      for (const { upstream, index } of fresh) {
        // Throws TransportFileError for an unreadable or invalid CA / client certificate.
        transports.set(upstream.name, new UpstreamTransport({ upstream, index, proxyDefaults: config.proxy, logger, metrics }))
      }
    } catch (err) {
      await Promise.all([credentials.close(), ...[...transports.values()].map((t) => t.close())])
      throw err
    }
    for (const { upstream } of fresh) {
      const transport = transports.get(upstream.name)!
      transport.watch()
      const client = new RegistryUpstream({
        name: upstream.name,
        url: upstream.url,
        credentials: credentials.providers.get(upstream.name),
        transport: transport.source,
        timeouts: { connectMs: upstream.timeouts.connect, headersMs: upstream.timeouts.headers, bodyIdleMs: upstream.timeouts.bodyIdle },
        retries: { maxRetries: upstream.retries },
        logger,
      })
      metrics.breakerState.set({ upstream: upstream.name }, 0)
      let self: BuiltUpstream | undefined
      const guarded = new BreakerUpstream(new MeteredUpstream(client, metrics), {
        failures: upstream.breaker.failures,
        cooldownMs: upstream.breaker.cooldown,
        onStateChange: (state) => {
          // A replaced upstream's late call must not overwrite its successor's state.
          if (self?.retired === true) return
          metrics.breakerState.set({ upstream: upstream.name }, circuitValue[state])
          logger.warn({ upstream: upstream.name, state }, 'upstream circuit changed')
        },
      })
      const tracked = new InFlightUpstream(guarded)
      batch.open++
      self = new BuiltUpstream(
        settingsOf(upstream, config),
        { upstream: tracked, tagTtl: upstream.tagTtl },
        tracked,
        client,
        transport,
        batch,
      )
      built.set(upstream.name, self)
      logger.info({ upstream: upstream.name, url: upstream.url, default: upstream.name === config.defaultUpstream }, 'mirroring upstream')
    }
  }
  const upstreams = new Map<string, MirrorUpstream>()
  // In config order, as the route table lists them.
  for (const { name } of config.upstreams) upstreams.set(name, built.get(name)!.entry)
  return { config, routes: { table: routeTable(config), upstreams }, built }
}
