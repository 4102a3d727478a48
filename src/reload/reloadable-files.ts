// A value made from one or more files that rotate while Ferry runs (a certificate and its key, a
// CA bundle, an htpasswd file, a signing key, a credential file): the one place that reads them,
// checks them, swaps the value, reports once and follows the files on disk.
//
// A reload reads every file of the set in one go and parses them together, so a certificate and
// its key are only ever taken into use as a pair: a reload that finds the new certificate beside
// the old key (a stall between two renames) fails the caller's check and keeps the old pair.
// Content equal to the content in use is a no-op. A value is swapped only once the caller's
// `install` accepted it. A failure is reported once per distinct problem, however many file
// events or signals repeat it; every attempt is still reported to `onEvent`, marked `repeated`.
//
// A failure found by the watch (not by an explicit reload) is first `deferred`: the files may be
// mid-rotation, one renamed and the other not yet. They are checked again after `settleMs` (or
// at the next change, whichever comes first), and only a failure that is still there is
// reported. An explicit reload (SIGHUP) reports at once: the operator asked.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { watchFiles, type FileWatch } from './file-watch.js'

export type ReloadResult = 'reloaded' | 'unchanged' | 'failed'

export type ReloadEvent<T> =
  /** New content is in use. */
  | { result: 'reloaded'; reason: string; value: T; previous: T }
  /** The content in use is on disk; `recovered` when a failure was reported since it was taken into use. */
  | { result: 'unchanged'; reason: string; recovered: boolean }
  /** The files are unusable, the previous value stays; `repeated` when this problem was reported last time too. */
  | { result: 'failed'; reason: string; error: unknown; repeated: boolean }
  /** The watch found unusable files; not a failure yet, they are checked again shortly. */
  | { result: 'deferred'; reason: string; error: unknown }

export interface ReloadableFilesOptions<T> {
  /** Read together, in this order, on every reload; all are watched. */
  paths: readonly string[]
  /**
   * Turns the files' contents (in `paths` order) into the value; throws to refuse them, with an
   * Error whose message never quotes the content (it is logged).
   */
  parse(contents: readonly Buffer[]): T | Promise<T>
  /** Puts a parsed value into service before it becomes `value`; may throw to refuse it. */
  install?(value: T, previous: T): void
  /** The error for a file that cannot be read (`code` as ENOENT, EACCES). */
  unreadable?(path: string, code: string): Error
  /** Told the outcome of every reload (for logs and counters); must not throw. */
  onEvent?(event: ReloadEvent<T>): void
  /** A folder that cannot be watched (explicit reloads still work). */
  onWatchError?(err: unknown, dir: string): void
  /** Quiet time after the last file event before reloading (default 500 ms). */
  debounceMs?: number
  /** How long a failure found by the watch may be mid-rotation before it is reported (default 1 s). */
  settleMs?: number
  /** The reason a watch-triggered reload gives (default `file change`). */
  watchReason?: string
}

/**
 * One quiet time for every reloadable file set: a certificate and key renamed back to back are
 * one reload, and a SIGHUP sent right after a rename is the reload that installs it.
 */
export const defaultDebounceMs = 500
export const defaultSettleMs = 1000

export class ReloadableFiles<T> {
  readonly paths: readonly string[]
  readonly #options: ReloadableFilesOptions<T>
  #value: T
  #generation = 1
  /** Digest of the contents in use: equal contents are not parsed again. */
  #inUse: string
  /** The problem last reported, so a broken file is reported once, not once per event or signal. */
  #reported: string | undefined
  #running: Promise<unknown> = Promise.resolve()
  #queued: Promise<ReloadResult> | undefined
  /** Whether the queued reload may defer a failure (false once an explicit reload joined it). */
  #queuedMayDefer = false
  #retry: NodeJS.Timeout | undefined
  #watch: FileWatch | undefined
  #closed = false

  /** Takes over a value the caller already read and parsed from `contents`. */
  constructor(options: ReloadableFilesOptions<T>, initial: { value: T; contents: readonly Buffer[] }) {
    this.paths = options.paths
    this.#options = options
    this.#value = initial.value
    this.#inUse = digest(initial.contents)
  }

  /** Reads and parses the files now; rejects with the first problem (start-up must fail on it). */
  static async open<T>(options: ReloadableFilesOptions<T>): Promise<ReloadableFiles<T>> {
    const contents = await readAll(options)
    return new ReloadableFiles(options, { value: await options.parse(contents), contents })
  }

  /** As open(), for a caller composed synchronously; `parse` must not return a promise. */
  static openSync<T>(options: ReloadableFilesOptions<T> & { parse(contents: readonly Buffer[]): T }): ReloadableFiles<T> {
    const contents = options.paths.map((path) => {
      try {
        return readFileSync(path)
      } catch (err) {
        throw unreadable(options, path, err)
      }
    })
    const value = options.parse(contents)
    if (value instanceof Promise) throw new TypeError('ReloadableFiles.openSync needs a synchronous parse')
    return new ReloadableFiles(options, { value, contents })
  }

  get value(): T {
    return this.#value
  }

  /** 1 at open, bumped each time new content is taken into use. */
  get generation(): number {
    return this.#generation
  }

  /**
   * Re-reads and checks the files now and swaps the value when they changed and are usable.
   * Never rejects. Calls while a reload runs are coalesced into one more reload after it.
   */
  reload(reason: string): Promise<ReloadResult> {
    return this.#enqueue(reason, false)
  }

  /** Starts following the files on disk; settles once every folder involved is watched. */
  watch(): Promise<void> {
    const reason = this.#options.watchReason ?? 'file change'
    this.#watch ??= watchFiles(this.paths, () => void this.#enqueue(reason, true), {
      debounceMs: this.#options.debounceMs ?? defaultDebounceMs,
      onError: (err, dir) => this.#options.onWatchError?.(err, dir),
    })
    return this.#watch.ready
  }

  close(): void {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#watch?.close()
    this.#watch = undefined
  }

  #enqueue(reason: string, mayDefer: boolean): Promise<ReloadResult> {
    if (this.#queued !== undefined) {
      if (!mayDefer) this.#queuedMayDefer = false
      return this.#queued
    }
    this.#queuedMayDefer = mayDefer
    const queued = this.#running.then(() => {
      this.#queued = undefined
      return this.#attempt(reason, this.#queuedMayDefer)
    })
    this.#queued = queued
    this.#running = queued.catch(() => undefined)
    return queued
  }

  async #attempt(reason: string, mayDefer: boolean): Promise<ReloadResult> {
    if (this.#closed) return 'unchanged'
    // This attempt reads the files the pending re-check would have read.
    clearTimeout(this.#retry)
    this.#retry = undefined
    let fingerprint: string
    let next: { value: T } | undefined
    try {
      const contents = await readAll(this.#options)
      fingerprint = digest(contents)
      if (fingerprint !== this.#inUse) {
        next = { value: await this.#options.parse(contents) }
        if (this.#closed) return 'unchanged'
        this.#options.install?.(next.value, this.#value)
      }
    } catch (err) {
      if (this.#closed) return 'failed'
      const problem = err instanceof Error ? err.message : String(err)
      const repeated = problem === this.#reported
      if (mayDefer && !repeated) {
        this.#retry = setTimeout(() => void this.#enqueue(reason, false), this.#options.settleMs ?? defaultSettleMs)
        this.#retry.unref()
        this.#emit({ result: 'deferred', reason, error: err })
        return 'failed'
      }
      this.#reported = problem
      this.#emit({ result: 'failed', reason, error: err, repeated })
      return 'failed'
    }
    if (next === undefined) {
      const recovered = this.#reported !== undefined
      this.#reported = undefined
      this.#emit({ result: 'unchanged', reason, recovered })
      return 'unchanged'
    }
    const { value } = next
    const previous = this.#value
    this.#value = value
    this.#inUse = fingerprint
    this.#generation++
    this.#reported = undefined
    this.#emit({ result: 'reloaded', reason, value, previous })
    return 'reloaded'
  }

  #emit(event: ReloadEvent<T>): void {
    this.#options.onEvent?.(event)
  }
}

async function readAll(options: Pick<ReloadableFilesOptions<unknown>, 'paths' | 'unreadable'>): Promise<Buffer[]> {
  return Promise.all(
    options.paths.map((path) =>
      readFile(path).catch((err: unknown) => {
        throw unreadable(options, path, err)
      }),
    ),
  )
}

function unreadable(options: Pick<ReloadableFilesOptions<unknown>, 'unreadable'>, path: string, err: unknown): Error {
  const code = (err as { code?: unknown }).code
  const name = typeof code === 'string' ? code : 'error'
  return options.unreadable?.(path, name) ?? new Error(`${path}: cannot be read (${name})`)
}

function digest(contents: readonly Buffer[]): string {
  const hash = createHash('sha256')
  // Lengths first, so the boundary between two files is part of what is compared.
  for (const part of contents) hash.update(`${part.length}:`).update(part)
  return hash.digest('hex')
}
