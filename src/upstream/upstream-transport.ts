// One upstream's transport kept current: built from its config (CA bundle, client certificate,
// insecure mode, proxy) at start-up, rebuilt when one of its files changes or on SIGHUP. A good
// new set serves new requests while requests in flight finish on the previous connections; a
// broken set keeps the transport in service, logs one error naming the file and counts
// ferry_upstream_transport_reload_total{result="error"}.
import type { Logger } from 'pino'
import {
  SwitchableTransport,
  Transport,
  redactProxyUrl,
  type ClientTimeouts,
  type ProxyChoice,
  type TlsMaterial,
} from '../client/transport.js'
import type { ProxyConfig, UpstreamConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { ReloadableFiles, type ReloadEvent } from '../reload/reloadable-files.js'
import { TransportFileError, checkMaterial, transportFilePaths, unreadableTransportFile, type UpstreamFiles } from './transport-files.js'

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
  readonly #material: ReloadableFiles<TlsMaterial>

  /** Reads and checks the files; throws TransportFileError (start-up must fail on it). */
  constructor(options: UpstreamTransportOptions) {
    const { upstream, index, logger, metrics } = options
    this.#options = options
    const files: UpstreamFiles = { upstream: upstream.name, keyPrefix: `mirror.upstreams.${index}.tls`, tls: upstream.tls }
    this.#files = files
    this.#timeouts = { connectMs: upstream.timeouts.connect, headersMs: upstream.timeouts.headers, bodyIdleMs: upstream.timeouts.bodyIdle }
    this.#proxy = proxyChoice(upstream, options.proxyDefaults)
    this.#material = ReloadableFiles.openSync({
      paths: transportFilePaths(files),
      parse: (contents) => checkMaterial(files, contents),
      // Requests in flight finish on the previous connections.
      install: (material) => void this.source.replace(this.#build(material)),
      unreadable: (path, code) => unreadableTransportFile(files, path, code),
      onEvent: (event) => this.#report(event),
      onWatchError: (err, dir) =>
        logger.warn({ upstream: upstream.name, dir, err }, 'cannot watch upstream tls file; SIGHUP still reloads it'),
      watchReason: 'file changed',
    })
    this.source = new SwitchableTransport(this.#build(this.#material.value))
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
    void this.#material.watch()
  }

  /** Re-reads the files and swaps in a new transport when they changed and are valid. Never rejects. */
  reload(reason: string): Promise<TransportReloadOutcome> {
    return this.#material.reload(reason)
  }

  /** Stops watching and closes every connection. */
  async close(): Promise<void> {
    this.#material.close()
    await this.source.destroy()
  }

  #report(event: ReloadEvent<TlsMaterial>): void {
    const { logger, metrics } = this.#options
    const upstream = this.#files.upstream
    const { reason } = event
    // Every attempt repeats the warning: the operator re-reading files should see it again.
    if (event.result !== 'deferred') this.#warnIfInsecure(reason)
    switch (event.result) {
      case 'reloaded':
        metrics.upstreamTransportReloads.inc({ upstream, result: 'ok' })
        logger.info(
          { upstream, reason, caPath: this.#files.tls.caPath, clientCertificate: this.#files.tls.certPath },
          'upstream tls reloaded; new requests use the new files',
        )
        return
      case 'unchanged':
        if (event.recovered) logger.info({ upstream, reason }, 'upstream tls files are valid again; transport unchanged')
        return
      case 'deferred':
        logger.debug({ upstream, reason, ...fields(event.error) }, 'upstream tls files not usable yet; checking again shortly')
        return
      case 'failed':
        metrics.upstreamTransportReloads.inc({ upstream, result: 'error' })
        // One line per distinct problem, however many file events or signals repeat it.
        if (!event.repeated) {
          logger.error(
            { upstream, reason, ...fields(event.error), error: event.error instanceof Error ? event.error.message : String(event.error) },
            'upstream tls reload failed; keeping the previous transport',
          )
        }
    }
  }

  #build(material: TlsMaterial): Transport {
    return new Transport({ timeouts: this.#timeouts, tls: material, proxy: this.#proxy })
  }

  #warnIfInsecure(reason: string): void {
    if (!this.#files.tls.insecureSkipVerify) return
    this.#options.logger.warn(
      { upstream: this.#files.upstream, reason, key: `${this.#files.keyPrefix}.insecureSkipVerify` },
      `upstream ${this.#files.upstream}: TLS certificate verification is OFF (insecureSkipVerify): anyone on the network path can impersonate it`,
    )
  }
}

function fields(err: unknown): { key?: string; file?: string } {
  return err instanceof TransportFileError ? { key: err.configKey, file: err.file } : {}
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
