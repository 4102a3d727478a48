// A small fetch (a manifest) under its content's lease when replicas share a storage: the holder
// fetches it into the cache; the others wait until it landed there, asking again every retry
// interval. A holder that neither finishes nor lets go for a few lease lifetimes is not waited
// for: this replica then fetches itself (a manifest is small; a stuck lease must not fail pulls).
import { setTimeout as delay } from 'node:timers/promises'
import type { FillCoordinator } from '../core/fill-lease.js'

const patienceInTtls = 4

export async function leasedFetch<T>(
  coordinator: FillCoordinator,
  key: string,
  /** The result once in the cache, else undefined. */
  landed: () => Promise<T | undefined>,
  fetch: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + Math.max(patienceInTtls * coordinator.leaseTtlMs, 10_000)
  for (;;) {
    const attempt = await coordinator.acquire(key)
    if (attempt.held) {
      try {
        // The holder before us may have stored it between our miss and our lease.
        return (await landed()) ?? (await fetch())
      } finally {
        await attempt.lease.release()
      }
    }
    const found = await landed()
    if (found !== undefined) return found
    if (Date.now() > deadline) return fetch()
    await delay(coordinator.retryMs)
  }
}
