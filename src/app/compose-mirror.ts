// Builds the pull-through mirror from config: a cache registry beside the local one on the same
// storage, and the live set of upstreams (live-upstreams.ts) that a config reload replaces.
import type { Logger } from 'pino'
import type { Registry } from '../core/registry.js'
import type { MirrorConfig } from '../config/schema.js'
import type { Metrics } from '../observability/metrics.js'
import { MirrorUpstreams } from './live-upstreams.js'
import type { FillCoordinator } from '../core/fill-lease.js'
import { defaultAdoptionLimits } from '../proxy/adoption-limits.js'
import type { BlobFill } from '../proxy/blob-fill.js'
import { MirrorContext } from '../proxy/mirror-context.js'
import { MirrorRegistry } from '../proxy/mirror-registry.js'
import type { BlockBudget } from '../transfer/shared-blocks.js'
import type { FillSpool } from '../transfer/fill-spool.js'

export interface Mirror {
  registry: Registry
  /** Re-reads the upstream credential files now (SIGHUP); watched files are re-read anyway. Never rejects. */
  reloadCredentials(): Promise<void>
  /** Lets blob downloads in flight finish (up to `timeoutMs`), then releases upstream connections. */
  close(timeoutMs: number): Promise<void>
  /** Re-reads every upstream's CA bundle and client certificate (SIGHUP); never rejects. */
  reloadTransports(reason: string): Promise<void>
  /**
   * Applies a re-read `mirror` section (upstreams, default upstream, namespaces, proxy, credential
   * files): new requests route by it; replaced upstreams finish what they carry. Never rejects.
   */
  apply(config: MirrorConfig): Promise<void>
  /** The blob fill running in this process under `key` (what the peer endpoint streams to other replicas). */
  fill(key: string): BlobFill | undefined
}

export interface MirrorServices {
  metrics: Metrics
  logger: Logger
  /** Memory for the blocks fills share with their followers (the process-wide budget). */
  blockBudget: BlockBudget
  /** Longest wait for a replaced upstream's downloads before its connections are closed. */
  retireTimeoutMs: number
  /** The mirror's clock (tag TTLs); tests step it. */
  now?: () => number
  /** Who fills a cold blob when replicas share the storage. */
  coordinator?: FillCoordinator
  /** Local files absorbing a store slower than the upstream (S3). */
  spool?: FillSpool
}

/** Rejects, naming upstream and file, when a credential, CA or certificate file the config names is unusable. */
export async function composeMirror(
  config: MirrorConfig,
  local: Registry,
  cache: Registry,
  { metrics, logger, blockBudget, retireTimeoutMs, now = Date.now, coordinator, spool }: MirrorServices,
): Promise<Mirror> {
  let context: MirrorContext | undefined
  const upstreams = await MirrorUpstreams.start(config, {
    metrics,
    logger,
    retireTimeoutMs,
    onReplaced: (name) => context?.forgetTagValidations(name),
  })
  context = new MirrorContext(cache, () => upstreams.routes(), metrics, logger, blockBudget, now, defaultAdoptionLimits, coordinator, spool)
  const draining = context
  return {
    registry: new MirrorRegistry(local, context),
    reloadCredentials: () => upstreams.reloadCredentials(),
    async close(timeoutMs) {
      await draining.drain(timeoutMs)
      await upstreams.close()
    },
    reloadTransports: (reason) => upstreams.reloadTransports(reason),
    apply: (next) => upstreams.apply(next),
    fill: (key) => draining.fills.get(key),
  }
}
