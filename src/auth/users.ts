// Accounts: the htpasswd file (a ReloadableFiles: watched, re-read on change) merged with the
// config's inline users. A reload swaps the whole map at once, so a removed user's next request
// fails; a file that does not parse keeps the previous accounts and logs one error naming the file.
import { hash as oneShotHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Logger } from 'pino'
import { ReloadableFiles, type ReloadEvent } from '../reload/reloadable-files.js'
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
  /** Told when new accounts are in use (`ok`) and of every failed reload (`error`). */
  onReload?: (outcome: 'ok' | 'error') => void
  /** Watch the htpasswd file (default true). */
  watch?: boolean
}

type Bcrypt = (typeof import('bcryptjs'))['default']

export class UserStore {
  private file: ReloadableFiles<Map<string, Account>> | undefined
  private inlineAccounts = new Map<string, Account>()
  // bcrypt is slow on purpose (tens of ms at cost 10 in JS), and clients using Basic directly
  // send the password on every request. A verified password is remembered as a digest under a
  // per-process key, tied to the account's current hash: a changed or removed account misses.
  private readonly verified = new LRUCache<string, { hash: string; mac: Buffer }>({ max: 1000 })
  /** The per-process secret, as text: prefixed to the password in one one-shot hash. */
  private readonly macKey = randomBytes(32).toString('hex')
  private readonly dummyHashes = new Map<number, string>()
  /** bcryptjs, loaded on the first password checked: a server without Basic logins never holds it. */
  private bcrypt: Promise<typeof import('bcryptjs')> | undefined

  private constructor(private readonly options: UserStoreOptions) {}

  /** Reads the htpasswd file (failing if it is missing or broken) and starts watching it. */
  static async open(options: UserStoreOptions): Promise<UserStore> {
    const store = new UserStore(options)
    const file = options.htpasswd
    store.inlineAccounts = merge([], options.inline)
    if (file === undefined) return store
    store.file = await ReloadableFiles.open({
      paths: [file],
      parse: (contents) => merge(parseFile(file, contents[0]!.toString('utf8')), options.inline),
      unreadable: (path, code) => Object.assign(new Error(`${path}: cannot be read (${code})`), { code }),
      onEvent: (event) => store.report(event),
      onWatchError: (err) => options.logger.error({ err, file }, 'cannot watch the htpasswd file; changes need a restart'),
    })
    if (options.watch !== false) void store.file.watch()
    return store
  }

  private get accounts(): Map<string, Account> {
    return this.file?.value ?? this.inlineAccounts
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
    // A SHA-256 behind the per-process secret rather than an HMAC: it is only ever compared for
    // equality inside this process, and createHmac cost 2-3× as much per Basic request (#18).
    // The one-shot crypto.hash() is half a createHash() chain's cost (1.1 vs 2.4 µs here).
    const mac = oneShotHash('sha256', this.macKey + password, 'buffer') as unknown as Buffer
    if (account) {
      const known = this.verified.get(name)
      if (known && known.hash === account.hash && timingSafeEqual(known.mac, mac)) return account
    }
    const bcrypt = (await (this.bcrypt ??= import('bcryptjs'))).default
    const hash = account?.hash ?? this.dummyHash(bcrypt)
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
   * the old ones stay and one error is logged (not repeated while the problem stays the same).
   */
  async reload(): Promise<boolean> {
    return (await this.file?.reload('SIGHUP')) !== 'failed'
  }

  close(): void {
    this.file?.close()
  }

  private report(event: ReloadEvent<Map<string, Account>>): void {
    const { logger, onReload, htpasswd: file } = this.options
    if (event.result === 'reloaded') {
      logger.info({ file, accounts: event.value.size }, 'htpasswd file reloaded')
      onReload?.('ok')
    } else if (event.result === 'failed') {
      if (!event.repeated) {
        const problem = event.error instanceof Error ? event.error.message : String(event.error)
        logger.error({ file, problem }, `htpasswd file ${file} is unusable, keeping the previous accounts`)
      }
      onReload?.('error')
    }
  }

  // Same cost as the accounts', so an unknown name takes as long as a wrong password.
  private dummyHash(bcrypt: Bcrypt): string {
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
