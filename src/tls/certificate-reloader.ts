// Live certificate rotation. Watches the folders holding the certificate, key and client CA
// files (and the folders their symlinks resolve to), and reloads on a change or on demand
// (SIGHUP). A reload re-reads all files, checks them as start-up does, and only then installs
// them; the server's setSecureContext affects new handshakes only, so connections and downloads
// in flight keep the certificate they started with. A broken replacement leaves the current
// certificate in service and is logged once per distinct problem, not once per file event.
//
// Folders are watched rather than files because rotations replace files: an atomic rename, or
// Kubernetes' secret volumes, where `tls.crt -> ..data/tls.crt` and the `..data` symlink itself is
// swapped. A watch on the file would follow the old inode and see nothing. Every event in a
// watched folder schedules a reload (debounced: a cert and a key written one after the other
// make one reload); a reload whose files are byte-identical to the set in service is a no-op.
import { watch, type FSWatcher } from 'node:fs'
import { realpath } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { Logger } from 'pino'
import type { Metrics } from '../observability/metrics.js'
import {
  TlsFileError,
  checkCertificateSet,
  readTlsFiles,
  type CertificateSet,
  type TlsFileBytes,
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
  /** Quiet time after the last file event before reloading. Default 500 ms. */
  debounceMs?: number
  now?: () => Date
}

export class CertificateReloader {
  readonly #options: CertificateReloaderOptions
  readonly #debounceMs: number
  #current: CertificateSet
  /** The problem last logged, so a broken file logs once however many events or signals follow. */
  #lastProblem: string | undefined
  #running: Promise<unknown> = Promise.resolve()
  #queued: Promise<ReloadOutcome> | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #watchers = new Map<string, FSWatcher>()
  #watching = false
  #closed = false

  constructor(options: CertificateReloaderOptions) {
    this.#options = options
    this.#debounceMs = options.debounceMs ?? 500
    this.#current = options.current
    options.metrics.tlsCertificateExpiry.set(options.current.notAfter.getTime() / 1000)
    // Both series exist from the start, so `increase(...{result="error"}[1h]) > 0` can alert.
    options.metrics.tlsReloads.inc({ result: 'ok' }, 0)
    options.metrics.tlsReloads.inc({ result: 'error' }, 0)
  }

  /** Starts watching the files' folders; changes reload after the debounce interval. */
  async watch(): Promise<void> {
    this.#watching = true
    await this.#updateWatches()
  }

  /**
   * Re-reads and checks the files and installs them when they changed and are valid. Never
   * rejects. Calls while a reload runs are coalesced into one more reload after it.
   */
  reload(reason: string): Promise<ReloadOutcome> {
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined
      return this.#attempt(reason)
    })
    this.#running = this.#queued
    return this.#queued
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#timer)
    for (const watcher of this.#watchers.values()) watcher.close()
    this.#watchers.clear()
  }

  async #attempt(reason: string): Promise<ReloadOutcome> {
    if (this.#closed) return 'unchanged'
    const { files, logger, metrics } = this.#options
    let outcome: ReloadOutcome
    try {
      const bytes = await readTlsFiles(files)
      if (sameBytes(bytes, this.#current.bytes)) {
        if (this.#lastProblem !== undefined) {
          logger.info({ reason, serial: this.#current.serialNumber }, 'tls files are valid again; serving certificate unchanged')
          this.#lastProblem = undefined
        }
        outcome = 'unchanged'
      } else {
        const set = checkCertificateSet(files, bytes, this.#options.now?.() ?? new Date())
        this.#options.install(set)
        const previous = this.#current
        this.#current = set
        this.#lastProblem = undefined
        metrics.tlsReloads.inc({ result: 'ok' })
        metrics.tlsCertificateExpiry.set(set.notAfter.getTime() / 1000)
        logger.info(
          {
            reason,
            serial: set.serialNumber,
            previousSerial: previous.serialNumber,
            subject: set.subject,
            notAfter: set.notAfter.toISOString(),
          },
          'tls certificate reloaded',
        )
        for (const warning of set.warnings) logger.warn({ reason, warning }, 'tls certificate warning')
        outcome = 'reloaded'
      }
    } catch (err) {
      metrics.tlsReloads.inc({ result: 'error' })
      const problem = err instanceof Error ? err.message : String(err)
      const fields = err instanceof TlsFileError ? { key: err.configKey, file: err.file } : {}
      if (problem !== this.#lastProblem) {
        logger.error(
          { reason, ...fields, error: problem, serial: this.#current.serialNumber },
          'tls certificate reload failed; still serving the previous certificate',
        )
      } else {
        logger.debug({ reason, ...fields }, 'tls certificate reload failed again with the same problem')
      }
      this.#lastProblem = problem
      outcome = 'failed'
    }
    // A swap may have moved a symlink's target to a new folder (Kubernetes' ..data): follow it.
    if (this.#watching && !this.#closed) await this.#updateWatches()
    return outcome
  }

  #schedule(): void {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.reload('file change'), this.#debounceMs)
    this.#timer.unref()
  }

  // Watches the folder of each path as configured, and the folder its symlinks resolve to.
  async #updateWatches(): Promise<void> {
    const paths = [this.#options.files.cert, this.#options.files.key, this.#options.files.clientCa].filter(
      (p): p is string => p !== undefined,
    )
    const dirs = new Set<string>()
    for (const path of paths) {
      dirs.add(dirname(resolve(path)))
      const real = await realpath(path).catch(() => undefined)
      if (real !== undefined) dirs.add(dirname(real))
    }
    if (this.#closed) return
    for (const [dir, watcher] of this.#watchers) {
      if (!dirs.has(dir)) {
        watcher.close()
        this.#watchers.delete(dir)
      }
    }
    for (const dir of dirs) {
      if (this.#watchers.has(dir)) continue
      try {
        const watcher = watch(dir, { persistent: false }, () => this.#schedule())
        watcher.on('error', (err) => {
          // The folder went away (a replaced symlink target): the next reload re-resolves.
          watcher.close()
          if (this.#watchers.get(dir) === watcher) this.#watchers.delete(dir)
          this.#options.logger.debug({ err, dir }, 'tls folder watch ended')
          this.#schedule()
        })
        this.#watchers.set(dir, watcher)
      } catch (err) {
        this.#options.logger.warn({ err, dir }, 'cannot watch a tls folder; reload with SIGHUP after replacing files there')
      }
    }
  }
}

function sameBytes(a: TlsFileBytes, b: TlsFileBytes): boolean {
  const same = (x: Buffer | undefined, y: Buffer | undefined): boolean => (x === undefined || y === undefined ? x === y : x.equals(y))
  return same(a.cert, b.cert) && same(a.key, b.key) && same(a.clientCa, b.clientCa)
}
