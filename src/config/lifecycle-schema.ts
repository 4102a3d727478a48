// The storage lifecycle's settings: the cache quota (`cache.maxSize`, per upstream, watermark)
// and the `maintenance` section (garbage collection, scrub, how often pull times are written).
import { Type } from '@sinclair/typebox'
import { ConfigIssue, expectedGot } from './errors.js'
import { duration, section, size } from './leaves.js'
import { formatSize, parseSize, sizePattern } from './units.js'

/** A quota: bytes, or a share of the storage volume. */
export type CacheQuota = { bytes: number } | { percent: number }

const quotaExpected = 'a size like "200GiB", a share of the volume like "80%", or 0 for no limit'

/** "200GiB", "80%" or 0 (no limit) → a CacheQuota, or undefined for no limit. */
export function quota() {
  const written = Type.Union([Type.String({ pattern: `${sizePattern}|^\\d+(?:\\.\\d+)?%$` }), Type.Literal(0)], {
    default: 0,
    expected: quotaExpected,
  })
  return Type.Transform(written)
    .Decode((value): CacheQuota | undefined => {
      if (value === 0) return undefined
      if (value.endsWith('%')) {
        const percent = Number(value.slice(0, -1))
        if (!(percent > 0 && percent <= 100)) throw new ConfigIssue([], expectedGot('a share between 0% and 100%', value))
        return { percent }
      }
      const bytes = parseSize(value)
      if (bytes === undefined) throw new ConfigIssue([], expectedGot(quotaExpected, value))
      return bytes === 0 ? undefined : { bytes }
    })
    .Encode((quota) => (quota === undefined ? 0 : 'percent' in quota ? `${quota.percent}%` : formatSize(quota.bytes)))
}

/** A share like "90%" → 0.9. */
function share(defaultValue: string) {
  const written = Type.String({ pattern: '^\\d+(?:\\.\\d+)?%$', default: defaultValue, expected: 'a share like "90%"' })
  return Type.Transform(written)
    .Decode((value) => {
      const percent = Number(value.slice(0, -1))
      if (!(percent > 0 && percent <= 100)) throw new ConfigIssue([], expectedGot('a share between 0% and 100%', value))
      return percent / 100
    })
    .Encode((ratio) => `${Math.round(ratio * 10000) / 100}%`)
}

/** Keys of the `cache` section about its size. */
export const cacheQuotaKeys = {
  /** Cached (mirrored) content beyond this is evicted, least recently pulled images first. */
  maxSize: quota(),
  /** Eviction brings the cache down to this share of its limit, so it does not run on every fill. */
  lowWatermark: share('90%'),
  /** Limits of single upstreams' cached content, besides maxSize. */
  upstreams: Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), maxSize: size('10GiB') }, { additionalProperties: false }), {
    default: [],
    expected: 'a list of {name, maxSize}',
  }),
}

export const maintenanceSchema = section({
  gc: section({
    /** Between garbage collections (the first one an interval after start); 0: only on demand (`ferry gc`, POST /ferry/v1/gc). */
    interval: duration('24h'),
    /** A blob nothing references yet is kept this long after it was written (a push in progress). */
    grace: duration('1h', { positive: true }),
  }),
  scrub: section({
    /** Between scrubs (the first one an interval after start); 0: only on demand (`ferry scrub`). */
    interval: duration('7d'),
    /** Bytes re-hashed per second at most. */
    rate: size('50MiB'),
  }),
  /** Between checks of the cache's size against its quota (fills also trigger one). */
  evictionInterval: duration('1m', { positive: true }),
  /** How often pull and push times recorded in memory are written to storage. */
  accessTimesFlush: duration('30s', { positive: true }),
})
