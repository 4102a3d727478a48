// Picks how replicas share cold fills: leases in Redis when coordination.redis.url is set (the
// client library is loaded only then), else none: each replica fills its own misses. The same
// store shares blob uses and maintenance passes with the storage lifecycle (ClusterActivity).
import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import type { CoordinationConfig } from '../config/schema.js'
import type { ClusterActivity } from '../core/cluster-activity.js'
import type { FillCoordinator } from '../core/fill-lease.js'
import { StartupError } from '../core/startup-error.js'
import { InProcessCoordinator } from '../coordination/in-process.js'

/** Rejects with a StartupError naming coordination.redis.url when Redis does not answer. */
export async function composeCoordination(config: CoordinationConfig, logger: Logger): Promise<FillCoordinator & ClusterActivity> {
  if (!config.redis || config.advertiseUrl === undefined) return new InProcessCoordinator()
  const { RedisCoordinator } = await import('../coordination/redis-leases.js')
  const { serverName, caPath } = config.peer
  let ca: Buffer | undefined
  try {
    ca = caPath === undefined ? undefined : await readFile(caPath)
  } catch (err) {
    throw new StartupError('coordination.peer.caPath', `cannot read ${caPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  return RedisCoordinator.connect({
    url: config.redis.url,
    keyPrefix: config.redis.keyPrefix,
    caPath: config.redis.caPath,
    leaseTtlMs: config.leaseTtl,
    advertiseUrl: config.advertiseUrl,
    peerTls: { serverName, ca },
    logger,
  })
}
