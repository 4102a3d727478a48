// The one way tests wait for something that happens asynchronously (a log line, a file watch, a
// count reaching a value): poll until it holds, never sleep a fixed time and hope. A condition
// holds when it neither throws nor returns false, undefined or null; its value is returned.
import { setTimeout as sleep } from 'node:timers/promises'

export interface EventuallyOptions {
  /** How long to keep trying; generous, since a loaded CI machine is slow (default 30 s). */
  timeoutMs?: number
  /** Pause between attempts (default 20 ms). */
  intervalMs?: number
  /** What was awaited, for the error when it never held. */
  message?: string
}

export async function eventually<T>(
  condition: () => T | Promise<T>,
  options: EventuallyOptions = {},
): Promise<Exclude<T, false | undefined | null>> {
  const { timeoutMs = 30_000, intervalMs = 20, message = 'condition' } = options
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await condition()
      if (value !== false && value !== undefined && value !== null) return value as Exclude<T, false | undefined | null>
      last = undefined
    } catch (err) {
      last = err
    }
    if (Date.now() >= deadline) {
      const reason = last instanceof Error ? `: ${last.message}` : ''
      throw new Error(`${message} did not hold within ${timeoutMs} ms${reason}`, { cause: last })
    }
    await sleep(intervalMs)
  }
}
