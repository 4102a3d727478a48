// Fill leases in Redis (or Valkey): SET key "<token> <advertiseUrl>" NX PX ttl takes one; the
// holder renews it while its fill runs and deletes it by token when done (compare-and-delete in
// Lua, so a lease that expired and was taken by another replica is never released by the old
// holder). A holder that dies stops renewing: the key expires and a waiting replica takes over.
// When Redis cannot be reached the replica fills on its own rather than failing the pull.
//
// The same store shares the storage lifecycle's view (ClusterActivity), under keys of its own
// beside the fill leases (`ferry:lifecycle:` for the default prefix `ferry:fill:`): a blob a
// replica reads or writes is marked by a key `…inuse:<digest>` that expires one lease TTL after its
// last refresh (refreshed while the use lasts), and a maintenance pass (eviction, GC, scrub) holds
// a lease `…maintenance:<name>`, so one replica at a time runs each.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { Redis } from 'ioredis'
import type { ClusterActivity } from '../core/cluster-activity.js'
import type { FillCoordinator, FillLease, LeaseAttempt, LeaseHolder, PeerFill } from '../core/fill-lease.js'
import { StartupError } from '../core/startup-error.js'
import { followPeer, type PeerTls } from './peer-client.js'
import { redactUrl } from './redact-url.js'

export interface RedisLeaseOptions {
  url: string
  /** Prepended to every key, so several Ferry deployments (or other tools) can share one Redis. */
  keyPrefix: string
  leaseTtlMs: number
  /** The base URL this replica's peers reach it at. */
  advertiseUrl: string
  /** A PEM CA bundle for a rediss:// server with a private CA. */
  caPath: string | undefined
  /** How the other replicas' certificates are checked when they advertise https:// URLs. */
  peerTls?: PeerTls
  logger: Logger
}

const renewScript = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
const releaseScript = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/** Digests asked about per MGET. */
const markBatch = 500

export class RedisCoordinator implements FillCoordinator, ClusterActivity {
  readonly shared = true
  readonly retryMs: number
  readonly leaseTtlMs: number
  /** Leases this process holds: key → token. */
  private readonly held = new Map<string, string>()
  /** Stops the renewal of each lease held (by token). */
  private readonly renewals = new Map<string, () => void>()
  private warnedAt = 0
  /** This replica's uses per digest, and the timer refreshing its mark. */
  private readonly uses = new Map<string, { count: number; timer: NodeJS.Timeout }>()

  private constructor(
    private readonly redis: Redis,
    private readonly options: RedisLeaseOptions,
  ) {
    this.leaseTtlMs = options.leaseTtlMs
    this.retryMs = Math.max(50, Math.min(1000, Math.floor(options.leaseTtlMs / 10)))
  }

  /** Connects and checks the server answers; a StartupError naming the setting if it does not. */
  static async connect(options: RedisLeaseOptions): Promise<RedisCoordinator> {
    const tls = options.caPath === undefined ? {} : { tls: { ca: readFileSync(options.caPath) } }
    const redis = new Redis(options.url, {
      lazyConnect: true,
      // A pull never queues behind a Redis that is away: the command fails and the replica fills itself.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 5000,
      ...tls,
    })
    const where = redactUrl(options.url)
    redis.on('error', () => {}) // reported where a command fails, at most every 30 s
    try {
      await redis.connect()
      await redis.ping()
    } catch (err) {
      redis.disconnect()
      const reason = err instanceof Error ? err.message : String(err)
      throw new StartupError('coordination.redis.url', `cannot reach Redis at ${where}: ${reason}`)
    }
    options.logger.info({ redis: where, advertiseUrl: options.advertiseUrl, leaseTtlMs: options.leaseTtlMs }, 'fill leases in Redis')
    return new RedisCoordinator(redis, options)
  }

  acquire(key: string): Promise<LeaseAttempt> {
    return this.acquireAt(this.options.keyPrefix + key, key)
  }

  private async acquireAt(redisKey: string, key: string): Promise<LeaseAttempt> {
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const token = randomBytes(16).toString('hex')
        const value = `${token} ${this.options.advertiseUrl}`
        if ((await this.redis.set(redisKey, value, 'PX', this.options.leaseTtlMs, 'NX')) === 'OK') {
          return { held: true, lease: this.lease(key, redisKey, value, token) }
        }
        const current = await this.redis.get(redisKey)
        if (current !== null) return { held: false, holder: parseHolder(current) }
        // Released between our SET and GET: try again.
      }
      return { held: false, holder: undefined }
    } catch (err) {
      this.warn(err)
      // Availability over deduplication: fill without a lease.
      return { held: true, lease: { token: '', release: () => Promise.resolve() } }
    }
  }

  heldToken(key: string): string | undefined {
    return this.held.get(key)
  }

  follow(holder: LeaseHolder, key: string, start: number): Promise<PeerFill | undefined> {
    return followPeer(holder, key, start, Math.max(this.options.leaseTtlMs, 5000), this.options.peerTls)
  }

  use(digest: string): () => void {
    let use = this.uses.get(digest)
    if (!use) {
      const mark = (): void => void this.mark(digest)
      const timer = setInterval(mark, Math.max(10, Math.floor(this.leaseTtlMs / 3)))
      timer.unref()
      use = { count: 0, timer }
      this.uses.set(digest, use)
      mark()
    }
    use.count++
    let ended = false
    return () => {
      if (ended) return
      ended = true
      const current = this.uses.get(digest)
      if (!current || --current.count > 0) return
      // The mark itself expires a TTL later: a sweep that listed the blob just before still sees it.
      clearInterval(current.timer)
      this.uses.delete(digest)
    }
  }

  async inUse(digests: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>()
    try {
      for (let at = 0; at < digests.length; at += markBatch) {
        const batch = digests.slice(at, at + markBatch)
        const values = await this.redis.mget(batch.map((digest) => this.markKey(digest)))
        values.forEach((value, i) => value !== null && found.add(batch[i]!))
      }
      return found
    } catch (err) {
      this.warn(err)
      // Nobody can tell: every one counts as in use, and the next pass tries again.
      return new Set(digests)
    }
  }

  async exclusive<T>(name: string, pass: () => Promise<T>): Promise<T | undefined> {
    const attempt = await this.acquireAt(`${lifecyclePrefix(this.options.keyPrefix)}maintenance:${name}`, `maintenance:${name}`)
    if (!attempt.held) return undefined
    try {
      return await pass()
    } finally {
      await attempt.lease.release()
    }
  }

  private markKey(digest: string): string {
    return `${lifecyclePrefix(this.options.keyPrefix)}inuse:${digest}`
  }

  private async mark(digest: string): Promise<void> {
    await this.redis.set(this.markKey(digest), '1', 'PX', this.leaseTtlMs).catch((err: unknown) => this.warn(err))
  }

  async close(): Promise<void> {
    for (const use of this.uses.values()) clearInterval(use.timer)
    this.uses.clear()
    for (const stop of [...this.renewals.values()]) stop()
    await this.redis.quit().catch(() => this.redis.disconnect())
  }

  private lease(key: string, redisKey: string, value: string, token: string): FillLease {
    this.held.set(key, token)
    let lastRenewed = Date.now()
    const renew = async (): Promise<void> => {
      try {
        if ((await this.redis.eval(renewScript, 1, redisKey, value, this.options.leaseTtlMs)) === 0) {
          // Expired (Redis restarted, or we stalled past the TTL) and maybe taken: the fill goes on; another may duplicate it.
          this.options.logger.warn({ key }, 'fill lease lost')
          stop()
          return
        }
        lastRenewed = Date.now()
      } catch (err) {
        if (Date.now() - lastRenewed > this.options.leaseTtlMs) this.warn(err)
      }
    }
    const timer = setInterval(() => void renew(), Math.max(10, Math.floor(this.options.leaseTtlMs / 3)))
    timer.unref()
    const stop = (): void => {
      clearInterval(timer)
      this.renewals.delete(token)
      if (this.held.get(key) === token) this.held.delete(key)
    }
    this.renewals.set(token, stop)
    return {
      token,
      release: async () => {
        stop()
        await this.redis.eval(releaseScript, 1, redisKey, value).catch((err: unknown) => this.warn(err))
      },
    }
  }

  private warn(err: unknown): void {
    const now = Date.now()
    if (now - this.warnedAt < 30_000) return
    this.warnedAt = now
    const reason = err instanceof Error ? err.message : String(err)
    this.options.logger.warn({ redis: redactUrl(this.options.url), error: reason }, 'Redis unavailable: filling without a lease')
  }
}

/** The lifecycle's keys sit beside the fill leases: `ferry:fill:` → `ferry:lifecycle:`, any other prefix + `lifecycle:`. */
export function lifecyclePrefix(keyPrefix: string): string {
  return `${keyPrefix.endsWith('fill:') ? keyPrefix.slice(0, -'fill:'.length) : keyPrefix}lifecycle:`
}

function parseHolder(value: string): LeaseHolder | undefined {
  const space = value.indexOf(' ')
  if (space <= 0) return undefined
  const url = value.slice(space + 1)
  return url === '' ? undefined : { token: value.slice(0, space), url }
}
