// Accounts: the htpasswd file (watched, re-read on change) merged with the config's inline users.
// A reload swaps the whole map at once, so a removed user's next request fails; a file that does
// not parse keeps the previous accounts and logs one error naming the file.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import bcrypt from 'bcryptjs'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { watchFile, type FileWatch } from '../reload/file-watch.js'
import { parseHtpasswd } from './htpasswd.js'

export interface Account {
  name: string
  /** bcrypt hash; also the account's credential version (a changed password changes it). */
  hash: string
  groups: readonly string[]
}

/** An account written in the config; one without a password only gives groups to the htpasswd user of that name. */
export interface InlineUser {
  name: string
  /** bcrypt hash. */
  password?: string | undefined
  groups: string[]
}

export interface UserStoreOptions {
  htpasswd: string | undefined
  inline: readonly InlineUser[]
  logger: Logger
  /** Told the outcome of every reload of the htpasswd file. */
  onReload?: (outcome: 'ok' | 'error') => void
  /** Watch the htpasswd file (default true). */
  watch?: boolean
}

export class UserStore {
  private accounts = new Map<string, Account>()
  private watcher: FileWatch | undefined
  private lastError: string | undefined
  // bcrypt is slow on purpose (tens of ms at cost 10 in JS), and clients using Basic directly
  // send the password on every request. A verified password is remembered as an HMAC under a
  // per-process key, tied to the account's current hash: a changed or removed account misses.
  private readonly verified = new LRUCache<string, { hash: string; mac: Buffer }>({ max: 1000 })
  private readonly macKey = randomBytes(32)
  private readonly dummyHashes = new Map<number, string>()

  private constructor(private readonly options: UserStoreOptions) {}

  /** Reads the htpasswd file (failing if it is missing or broken) and starts watching it. */
  static async open(options: UserStoreOptions): Promise<UserStore> {
    const store = new UserStore(options)
    const file = options.htpasswd === undefined ? [] : parseFile(options.htpasswd, await readFile(options.htpasswd, 'utf8'))
    store.accounts = merge(file, options.inline)
    if (options.htpasswd !== undefined && options.watch !== false) {
      store.watcher = watchFile(options.htpasswd, () => void store.reload(), {
        onError: (err) => options.logger.error({ err, file: options.htpasswd }, 'cannot watch the htpasswd file; changes need a restart'),
      })
    }
    return store
  }

  get size(): number {
    return this.accounts.size
  }

  get(name: string): Account | undefined {
    return this.accounts.get(name)
  }

  /** The account when `password` is right; undefined otherwise (unknown users cost a bcrypt too). */
  async verify(name: string, password: string): Promise<Account | undefined> {
    const account = this.accounts.get(name)
    const mac = createHmac('sha256', this.macKey).update(password).digest()
    if (account) {
      const known = this.verified.get(name)
      if (known && known.hash === account.hash && timingSafeEqual(known.mac, mac)) return account
    }
    const hash = account?.hash ?? this.dummyHash()
    const ok = await bcrypt.compare(password, hash)
    if (!ok || !account) return undefined
    // The accounts may have been swapped while bcrypt ran: answer from the current map.
    const current = this.accounts.get(name)
    if (current?.hash !== account.hash) return undefined
    this.verified.set(name, { hash: account.hash, mac })
    return current
  }

  /**
   * Re-reads the htpasswd file. On success the new accounts replace the old at once; on failure
   * the old ones stay and one error is logged (not repeated while the file stays the same).
   */
  async reload(): Promise<boolean> {
    const file = this.options.htpasswd
    if (file === undefined) return true
    try {
      const entries = parseFile(file, await readFile(file, 'utf8'))
      this.accounts = merge(entries, this.options.inline)
      this.lastError = undefined
      this.options.logger.info({ file, accounts: this.accounts.size }, 'htpasswd file reloaded')
      this.options.onReload?.('ok')
      return true
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err)
      if (message !== this.lastError) {
        this.lastError = message
        this.options.logger.error({ file, problem: message }, `htpasswd file ${file} is unusable, keeping the previous accounts`)
      }
      this.options.onReload?.('error')
      return false
    }
  }

  close(): void {
    this.watcher?.close()
  }

  // Same cost as the accounts', so an unknown name takes as long as a wrong password.
  private dummyHash(): string {
    const first = this.accounts.values().next().value
    const rounds = first ? bcrypt.getRounds(first.hash) : 10
    let hash = this.dummyHashes.get(rounds)
    if (hash === undefined) {
      hash = bcrypt.hashSync(randomBytes(16).toString('hex'), rounds)
      this.dummyHashes.set(rounds, hash)
    }
    return hash
  }
}

function parseFile(file: string, text: string) {
  try {
    return parseHtpasswd(text)
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}

// An htpasswd entry wins over an inline password (the file is what gets rotated); inline groups
// always apply.
function merge(file: Array<{ name: string; hash: string }>, inline: readonly InlineUser[]): Map<string, Account> {
  const accounts = new Map<string, Account>()
  const groups = new Map(inline.map((u) => [u.name, u.groups]))
  for (const user of inline) {
    if (user.password !== undefined) accounts.set(user.name, { name: user.name, hash: user.password, groups: user.groups })
  }
  for (const entry of file) accounts.set(entry.name, { name: entry.name, hash: entry.hash, groups: groups.get(entry.name) ?? [] })
  return accounts
}
