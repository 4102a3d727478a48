// One credential file (a service-account key, a Docker config.json) held in memory, re-read
// when it changes on disk or on demand (SIGHUP). A replacement that cannot be read or parsed
// keeps the previous content and is reported once; content is never part of any report.
import { ReloadableFiles } from '../reload/reloadable-files.js'

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
  readonly #file: ReloadableFiles<T>
  readonly #hooks: Hooks

  private constructor(path: string, file: ReloadableFiles<T>, hooks: Hooks) {
    this.path = path
    this.#file = file
    this.#hooks = hooks
  }

  /** Reads and parses the file now; rejects with CredentialFileError when it is unusable. */
  static async open<T>(path: string, parse: CredentialParser<T>): Promise<CredentialFile<T>> {
    const hooks: Hooks = { listeners: new Set() }
    const emit = (report: CredentialFileReport): void => {
      for (const listener of hooks.listeners) listener(report)
    }
    const file = await ReloadableFiles.open<T>({
      paths: [path],
      parse: (contents) => parse(contents[0]!.toString('utf8')),
      unreadable: (_, code) => new Error(`cannot be read (${code})`),
      onEvent: (event) => {
        // Each distinct problem once; `ok` only when new content is in use.
        if (event.result === 'reloaded') emit({ path, result: 'ok' })
        if (event.result === 'failed' && !event.repeated) {
          emit({ path, result: 'error', error: event.error instanceof Error ? event.error.message : 'is unusable' })
        }
      },
      onWatchError: (err) => hooks.onWatchError?.(err),
    }).catch((err: unknown) => {
      throw new CredentialFileError(path, err instanceof Error ? err.message : 'is unusable')
    })
    return new CredentialFile(path, file, hooks)
  }

  get value(): T {
    return this.#file.value
  }

  /** Bumped each time new content is taken into use. */
  get generation(): number {
    return this.#file.generation
  }

  onReport(listener: CredentialFileListener): () => void {
    this.#hooks.listeners.add(listener)
    return () => this.#hooks.listeners.delete(listener)
  }

  /** Re-reads the file; unchanged content is a no-op. Never rejects. */
  async reload(): Promise<void> {
    await this.#file.reload('SIGHUP')
  }

  /** Starts re-reading on every change of the file (renames and symlink swaps included). */
  watch(onWatchError?: (err: unknown) => void): void {
    this.#hooks.onWatchError = onWatchError
    void this.#file.watch()
  }

  close(): void {
    this.#file.close()
    this.#hooks.listeners.clear()
  }
}

/** What the file's events reach: set after it was opened. */
interface Hooks {
  listeners: Set<CredentialFileListener>
  onWatchError?: ((err: unknown) => void) | undefined
}
