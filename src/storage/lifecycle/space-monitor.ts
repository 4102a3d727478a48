// A full volume (ENOSPC, or EDQUOT for a quota) is a condition, not a crash: the write that hit it
// fails with a clear OCI error (507, "storage full"), the condition is logged once and shown by
// /readyz, the cache is asked to free space, and it clears by itself with the next write that
// succeeds or once the volume has room again.
import { isOutOfSpace, RegistryError } from '../../core/errors.js'

export { isOutOfSpace }

export interface SpaceEvents {
  /** Entered the condition (once per episode): log it, evict cached content. */
  full(cause: string): void
  /** Left it. */
  recovered(): void
}

export class SpaceMonitor {
  private cause: string | undefined

  constructor(private readonly events: SpaceEvents) {}

  /** Why storage is full, while it is; undefined otherwise. */
  get problem(): string | undefined {
    return this.cause
  }

  /**
   * Runs a write; an out-of-space failure enters the condition, runs `onFull` (cleanup), and
   * becomes a RegistryError a client understands; anything else passes through. A success ends the condition.
   */
  async write<T>(work: () => Promise<T>, onFull?: () => Promise<unknown>): Promise<T> {
    try {
      const result = await work()
      this.clear()
      return result
    } catch (err) {
      if (!isOutOfSpace(err)) throw err
      this.report(err)
      await onFull?.()
      throw new RegistryError('UNKNOWN', `registry storage is full: ${this.cause}; retry once space is freed`, undefined, { status: 507 })
    }
  }

  /** A write that met a full volume and carries on without storing (a mirror fill streaming on). */
  report(err: Error): void {
    this.enter((err as NodeJS.ErrnoException).code === 'EDQUOT' ? 'disk quota exceeded (EDQUOT)' : 'no space left on device (ENOSPC)')
  }

  /** A periodic free-space reading: room again ends the condition. */
  sawFreeSpace(): void {
    this.clear()
  }

  private enter(cause: string): void {
    if (this.cause !== undefined) return
    this.cause = cause
    this.events.full(cause)
  }

  private clear(): void {
    if (this.cause === undefined) return
    this.cause = undefined
    this.events.recovered()
  }
}
