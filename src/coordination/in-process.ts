// Without a shared lease store each replica fills on its own: every lease is held at once.
// Concurrent misses in one process still coalesce into one fill (proxy/mirror-blobs.ts); several
// replicas on one storage each fetch a cold blob once.
import { unsharedActivity, type ClusterActivity } from '../core/cluster-activity.js'
import type { FillCoordinator, FillLease, LeaseAttempt, PeerFill } from '../core/fill-lease.js'

const ownLease: FillLease = { token: '', release: () => Promise.resolve() }

export class InProcessCoordinator implements FillCoordinator, ClusterActivity {
  readonly shared = false
  readonly retryMs = 1000
  readonly leaseTtlMs = 0

  readonly use = unsharedActivity.use
  readonly inUse = unsharedActivity.inUse
  readonly exclusive = unsharedActivity.exclusive

  acquire(): Promise<LeaseAttempt> {
    return Promise.resolve({ held: true, lease: ownLease })
  }

  heldToken(): string | undefined {
    return undefined
  }

  follow(): Promise<PeerFill | undefined> {
    return Promise.resolve(undefined)
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}
