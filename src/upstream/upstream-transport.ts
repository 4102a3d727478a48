// One upstream's transport kept current: built from its config (CA bundle, client certificate,
// insecure mode, proxy) at start-up, rebuilt when one of its files changes or on SIGHUP. A good
// new set serves new requests while requests in flight finish on the previous connections; a
// broken set keeps the transport in service, logs one error naming the file and counts
// ferry_upstream_transport_reload_total{result="error"}.
import type { Logger } from 'pino'
import { SwitchableTransport, Transport, redactProxyUrl, type ClientTimeouts, type ProxyChoice } from '../client/transport.js'
import type { ProxyConfig, UpstreamConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { watchFile, type FileWatch } from '../reload/file-watch.js'
import {
  TransportFileError,
  configuredFiles,
  loadMaterial,
  loadMaterialSync,
  type CheckedMaterial,
  type UpstreamFiles,
} from './transport-files.js'

export type TransportReloadOutcome = 'reloaded' | 'unchanged' | 'failed'

export interface UpstreamTransportOptions {
  upstream: UpstreamConfig
  /** Position in mirror.upstreams, for config keys in messages. */
  index: number
  /** mirror.proxy: the rules of an upstream whose `proxy` is unset. */
  proxyDefaults: ProxyConfig | undefined
  logger: Logger
  metrics: Pick<Metrics, 'upstreamTransportReloads'>
}

export class UpstreamTransport {
  /** What the upstream's client sends through; swapped on a successful reload. */
  readonly source: SwitchableTransport
  readonly #options: UpstreamTransportOptions
  readonly #files: UpstreamFiles
  readonly #timeouts: ClientTimeouts
  readonly #proxy: ProxyChoice
  #fingerprint: string
  #lastProblem: string | undefined
  #running: Promise<unknown> = Promise.resolve()
  #watches: FileWatch[] = []
  #closed = false

  /** Reads and checks the files; throws TransportFileError (start-up must fail on it). */
  constructor(options: UpstreamTransportOptions) {
    const { upstream, index, logger, metrics } = options
    this.#options = options
    this.#files = { upstream: upstream.name, keyPrefix: `mirror.upstreams.${index}.tls`, tls: upstream.tls }
    this.#timeouts = { connectMs: upstream.timeouts.connect, headersMs: upstream.timeouts.headers, bodyIdleMs: upstream.timeouts.bodyIdle }
    this.#proxy = proxyChoice(upstream, options.proxyDefaults)
    const checked = loadMaterialSync(this.#files)
    this.#fingerprint = checked.fingerprint
    this.source = new SwitchableTransport(this.#build(checked))
    // Both series exist from the start, so `increase(...{result="error"}[1h]) > 0` can alert.
    metrics.upstreamTransportReloads.inc({ upstream: upstream.name, result: 'ok' }, 0)
    metrics.upstreamTransportReloads.inc({ upstream: upstream.name, result: 'error' }, 0)
    const { caPath, certPath } = upstream.tls
    if (caPath !== undefined || certPath !== undefined || this.#proxy.kind !== 'direct') {
      logger.info({ upstream: upstream.name, caPath, clientCertificate: certPath, proxy: describeProxy(this.#proxy) }, 'upstream transport')
    }
    this.#warnIfInsecure('start')
  }

  /** Starts watching the configured files; a change reloads. */
  watch(): void {
    for (const path of configuredFiles(this.#files)) {
      this.#watches.push(
        watchFile(path, () => void this.reload('file changed'), {
          debounceMs: 300,
          onError: (err) =>
            this.#options.logger.warn(
              { upstream: this.#files.upstream, file: path, err },
              'cannot watch upstream tls file; SIGHUP still reloads it',
            ),
        }),
      )
    }
  }

  /** Re-reads the files and swaps in a new transport when they changed and are valid. Never rejects. */
  reload(reason: string): Promise<TransportReloadOutcome> {
    const attempt = this.#running.then(() => this.#attempt(reason))
    this.#running = attempt
    return attempt
  }

  /** Stops watching and closes every connection. */
  async close(): Promise<void> {
    this.#closed = true
    for (const watch of this.#watches) watch.close()
    await this.source.destroy()
  }

  async #attempt(reason: string): Promise<TransportReloadOutcome> {
    if (this.#closed) return 'unchanged'
    const { logger, metrics } = this.#options
    const upstream = this.#files.upstream
    this.#warnIfInsecure(reason)
    let checked: CheckedMaterial
    try {
      checked = await loadMaterial(this.#files)
    } catch (err) {
      const fields = err instanceof TransportFileError ? { key: err.configKey, file: err.file } : {}
      const message = err instanceof Error ? err.message : String(err)
      metrics.upstreamTransportReloads.inc({ upstream, result: 'error' })
      // One line per distinct problem, however many file events or signals repeat it.
      if (message !== this.#lastProblem) {
        logger.error({ upstream, reason, ...fields, error: message }, 'upstream tls reload failed; keeping the previous transport')
        this.#lastProblem = message
      }
      return 'failed'
    }
    const recovered = this.#lastProblem !== undefined
    this.#lastProblem = undefined
    if (checked.fingerprint === this.#fingerprint) {
      if (recovered) logger.info({ upstream, reason }, 'upstream tls files are valid again; transport unchanged')
      return 'unchanged'
    }
    this.#fingerprint = checked.fingerprint
    void this.source.replace(this.#build(checked))
    metrics.upstreamTransportReloads.inc({ upstream, result: 'ok' })
    logger.info(
      { upstream, reason, caPath: this.#files.tls.caPath, clientCertificate: this.#files.tls.certPath },
      'upstream tls reloaded; new requests use the new files',
    )
    return 'reloaded'
  }

  #build(checked: CheckedMaterial): Transport {
    return new Transport({ timeouts: this.#timeouts, tls: checked.material, proxy: this.#proxy })
  }

  #warnIfInsecure(reason: string): void {
    if (!this.#files.tls.insecureSkipVerify) return
    this.#options.logger.warn(
      { upstream: this.#files.upstream, reason, key: `${this.#files.keyPrefix}.insecureSkipVerify` },
      `upstream ${this.#files.upstream}: TLS certificate verification is OFF (insecureSkipVerify): anyone on the network path can impersonate it`,
    )
  }
}

function proxyChoice(upstream: UpstreamConfig, defaults: ProxyConfig | undefined): ProxyChoice {
  switch (upstream.proxy.kind) {
    case 'direct':
      return { kind: 'direct' }
    case 'url':
      return { kind: 'url', url: upstream.proxy.url }
    case 'default':
      if (defaults === undefined || (defaults.httpsProxy === undefined && defaults.httpProxy === undefined)) return { kind: 'direct' }
      return { kind: 'rules', httpsProxy: defaults.httpsProxy, httpProxy: defaults.httpProxy, noProxy: defaults.noProxy }
  }
}

/** For logs: proxy URLs without their credentials. */
function describeProxy(choice: ProxyChoice): unknown {
  switch (choice.kind) {
    case 'direct':
      return 'none'
    case 'url':
      return redactProxyUrl(choice.url)
    case 'rules':
      return {
        httpsProxy: choice.httpsProxy && redactProxyUrl(choice.httpsProxy),
        httpProxy: choice.httpProxy && redactProxyUrl(choice.httpProxy),
        noProxy: choice.noProxy,
      }
  }
}
