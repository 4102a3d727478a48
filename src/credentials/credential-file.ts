// One credential file (a service-account key, a Docker config.json) held in memory, re-read
// when it changes on disk or on demand (SIGHUP). A replacement that cannot be read or parsed
// keeps the previous content and is reported once; content is never part of any report.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { watchFile, type FileWatch } from '../reload/file-watch.js'

/** Turns the file's bytes into usable material; throws an Error whose message never quotes them. */
export type CredentialParser<T> = (text: string) => T

export interface CredentialFileReport {
  path: string
  /** `ok`: new content in use; `error`: unusable, the previous content stays in use. */
  result: 'ok' | 'error'
  /** Why it is unusable (no content quoted). */
  error?: string
}

export type CredentialFileListener = (report: CredentialFileReport) => void

/** Thrown when a credential file cannot be used at start: the message names the file. */
export class CredentialFileError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`)
    this.name = 'CredentialFileError'
  }
}

export class CredentialFile<T> {
  readonly path: string
  readonly #parse: CredentialParser<T>
  readonly #listeners = new Set<CredentialFileListener>()
  #value: T
  #generation = 1
  /** Fingerprints of the content in use and of the last rejected content, to report each once. */
  #inUse: string
  #rejected: string | undefined
  #watch: FileWatch | undefined
  #reloading: Promise<void> | undefined

  private constructor(path: string, parse: CredentialParser<T>, value: T, fingerprint: string) {
    this.path = path
    this.#parse = parse
    this.#value = value
    this.#inUse = fingerprint
  }

  /** Reads and parses the file now; rejects with CredentialFileError when it is unusable. */
  static async open<T>(path: string, parse: CredentialParser<T>): Promise<CredentialFile<T>> {
    const outcome = await readAndParse(path, parse)
    if ('error' in outcome) throw new CredentialFileError(path, outcome.error)
    return new CredentialFile(path, parse, outcome.value, outcome.fingerprint)
  }

  get value(): T {
    return this.#value
  }

  /** Bumped each time new content is taken into use. */
  get generation(): number {
    return this.#generation
  }

  onReport(listener: CredentialFileListener): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Re-reads the file; unchanged content is a no-op. Never rejects. */
  reload(): Promise<void> {
    // Watch events and SIGHUP can arrive together: one read at a time, the later one re-reads.
    const previous = this.#reloading ?? Promise.resolve()
    const next = previous.then(() => this.#reloadOnce())
    this.#reloading = next
    void next.finally(() => {
      if (this.#reloading === next) this.#reloading = undefined
    })
    return next
  }

  /** Starts re-reading on every change of the file (renames and symlink swaps included). */
  watch(onWatchError?: (err: unknown) => void): void {
    this.#watch ??= watchFile(this.path, () => void this.reload(), onWatchError ? { onError: onWatchError } : {})
  }

  close(): void {
    this.#watch?.close()
    this.#watch = undefined
    this.#listeners.clear()
  }

  async #reloadOnce(): Promise<void> {
    const outcome = await readAndParse(this.path, this.#parse)
    if ('error' in outcome) {
      if (outcome.fingerprint !== undefined && outcome.fingerprint === this.#rejected) return
      this.#rejected = outcome.fingerprint
      this.#emit({ path: this.path, result: 'error', error: outcome.error })
      return
    }
    this.#rejected = undefined
    if (outcome.fingerprint === this.#inUse) return
    this.#inUse = outcome.fingerprint
    this.#value = outcome.value
    this.#generation++
    this.#emit({ path: this.path, result: 'ok' })
  }

  #emit(report: CredentialFileReport): void {
    for (const listener of this.#listeners) listener(report)
  }
}

type Outcome<T> = { value: T; fingerprint: string } | { error: string; fingerprint?: string }

async function readAndParse<T>(path: string, parse: CredentialParser<T>): Promise<Outcome<T>> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    const code = (err as { code?: unknown }).code
    return { error: `cannot be read (${typeof code === 'string' ? code : 'error'})` }
  }
  const fingerprint = createHash('sha256').update(bytes).digest('hex')
  try {
    return { value: parse(bytes.toString('utf8')), fingerprint }
  } catch (err) {
    return { error: err instanceof Error ? err.message : 'is unusable', fingerprint }
  }
}
