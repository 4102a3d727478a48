// Shared by the drivers so every backend answers the same byte-range edge cases identically.
import type { ReadOptions } from './driver.js'

export interface ReadRange {
  start: number
  /** Inclusive; undefined means "to the end of the file". */
  end: number | undefined
  /** True when the range selects no bytes at all (end before start). */
  empty: boolean
}

/**
 * Validates ReadOptions offsets. A start at or past the end of the file reads nothing and an end
 * past it is clamped, as with fs streams; negative or fractional offsets are caller bugs.
 */
export function readRange(options: ReadOptions | undefined): ReadRange {
  const start = options?.start ?? 0
  const end = options?.end
  for (const value of [start, end]) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new RangeError(`invalid read offset: ${value}`)
    }
  }
  return { start, end, empty: end !== undefined && end < start }
}
