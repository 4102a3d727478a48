// Live certificate rotation: the serving certificate, key and client CA files as one
// ReloadableFiles set, followed on disk (folder watches that see atomic renames and Kubernetes'
// `..data` symlink swaps) and reloaded on demand (SIGHUP). A reload re-reads all files, checks
// them as start-up does (the key must belong to the certificate: a rotation caught between two
// renames never installs a mismatched pair), and only then installs them; the server's
// setSecureContext affects new handshakes only, so connections and downloads in flight keep the
// certificate they started with. A broken replacement leaves the current certificate in service
// and is logged once per distinct problem, not once per file event.
import type { Logger } from 'pino'
import type { Metrics } from '../observability/metrics.js'
import { ReloadableFiles, type ReloadEvent } from '../reload/reloadable-files.js'
import {
  TlsFileError,
  checkCertificateSet,
  tlsFileBytes,
  tlsFileContents,
  tlsFilePaths,
  unreadableTlsFile,
  type CertificateSet,
  type TlsFiles,
} from './certificate-set.js'

export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed'

export interface CertificateReloaderOptions {
  files: TlsFiles
  /** The set in service, loaded and installed at start-up. */
  current: CertificateSet
  /** Puts a checked set into service (server.setSecureContext); may throw to refuse it. */
  install(set: CertificateSet): void
  logger: Logger
  metrics: Pick<Metrics, 'tlsCertificateExpiry' | 'tlsReloads'>
  /** Quiet time after the last file event before reloading (the reload/ default unless set). */
  debounceMs?: number
  /** How long files the watch found unusable may be mid-rotation before it is reported (the reload/ default unless set). */
  settleMs?: number
  now?: () => Date
}

export class CertificateReloader {
  readonly #options: CertificateReloaderOptions
  readonly #files: ReloadableFiles<CertificateSet>

  constructor(options: CertificateReloaderOptions) {
    this.#options = options
    const { files, current, metrics } = options
    this.#files = new ReloadableFiles<CertificateSet>(
      {
        paths: tlsFilePaths(files),
        parse: (contents) => checkCertificateSet(files, tlsFileBytes(contents), options.now?.() ?? new Date()),
        install: (set) => options.install(set),
        unreadable: (path, code) => unreadableTlsFile(files, path, code),
        onEvent: (event) => this.#report(event),
        onWatchError: (err, dir) =>
          options.logger.warn({ err, dir }, 'cannot watch a tls folder; reload with SIGHUP after replacing files there'),
        ...(options.debounceMs === undefined ? {} : { debounceMs: options.debounceMs }),
        ...(options.settleMs === undefined ? {} : { settleMs: options.settleMs }),
      },
      { value: current, contents: tlsFileContents(current.bytes) },
    )
    metrics.tlsCertificateExpiry.set(current.notAfter.getTime() / 1000)
    // Both series exist from the start, so `increase(...{result="error"}[1h]) > 0` can alert.
    metrics.tlsReloads.inc({ result: 'ok' }, 0)
    metrics.tlsReloads.inc({ result: 'error' }, 0)
  }

  /** Starts watching the files' folders; changes reload after the debounce interval. */
  watch(): Promise<void> {
    return this.#files.watch()
  }

  /**
   * Re-reads and checks the files and installs them when they changed and are valid. Never
   * rejects. Calls while a reload runs are coalesced into one more reload after it.
   */
  reload(reason: string): Promise<ReloadOutcome> {
    return this.#files.reload(reason)
  }

  close(): void {
    this.#files.close()
  }

  #report(event: ReloadEvent<CertificateSet>): void {
    const { logger, metrics } = this.#options
    const { reason } = event
    const fields = (err: unknown) => (err instanceof TlsFileError ? { key: err.configKey, file: err.file } : {})
    const problem = (err: unknown) => (err instanceof Error ? err.message : String(err))
    switch (event.result) {
      case 'reloaded': {
        const set = event.value
        metrics.tlsReloads.inc({ result: 'ok' })
        metrics.tlsCertificateExpiry.set(set.notAfter.getTime() / 1000)
        logger.info(
          {
            reason,
            serial: set.serialNumber,
            previousSerial: event.previous.serialNumber,
            subject: set.subject,
            notAfter: set.notAfter.toISOString(),
          },
          'tls certificate reloaded',
        )
        for (const warning of set.warnings) logger.warn({ reason, warning }, 'tls certificate warning')
        return
      }
      case 'unchanged':
        if (event.recovered) {
          logger.info({ reason, serial: this.#files.value.serialNumber }, 'tls files are valid again; serving certificate unchanged')
        }
        return
      case 'deferred':
        // Often a rotation half done (the certificate renamed, the key not yet): checked again shortly.
        logger.debug({ reason, ...fields(event.error), error: problem(event.error) }, 'tls files not usable yet; checking again shortly')
        return
      case 'failed':
        metrics.tlsReloads.inc({ result: 'error' })
        if (event.repeated) {
          logger.debug({ reason, ...fields(event.error) }, 'tls certificate reload failed again with the same problem')
        } else {
          logger.error(
            { reason, ...fields(event.error), error: problem(event.error), serial: this.#files.value.serialNumber },
            'tls certificate reload failed; still serving the previous certificate',
          )
        }
    }
  }
}
