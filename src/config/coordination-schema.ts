// The `coordination` section: how replicas on one storage share cold fills. Without a Redis URL
// each replica fetches a cold blob on its own; with one, a lease per blob makes one replica fetch
// it and the others stream it from that replica (its `advertiseUrl`).
import { Type } from '@sinclair/typebox'
import { ConfigIssue } from './errors.js'
import { duration, section } from './leaves.js'

// "" means unset. The URL gets no pattern: a schema error would quote its password.
const rawCoordination = section({
  redis: section({
    url: Type.String({
      default: '',
      expected: 'a redis:// or rediss:// URL like "redis://:password@redis:6379/0", or "" for no coordination',
    }),
    /** Prepended to every lease key, so deployments can share a Redis. */
    keyPrefix: Type.String({ default: 'ferry:fill:', expected: 'a Redis key prefix like "ferry:fill:"' }),
    caPath: Type.String({ default: '', expected: 'a path to a PEM CA bundle for a rediss:// server, or ""' }),
  }),
  /** A lease outlives a dead holder this long; its holder renews it every third of it. */
  leaseTtl: duration('15s', { positive: true }),
  advertiseUrl: Type.String({
    default: '',
    pattern: '^(?:https?://[^/?#\\s]+/?)?$',
    expected: 'the http(s) base URL other replicas reach this one at, like "http://10.0.0.7:5000", or ""',
  }) /** How this replica checks the others' TLS certificates when their advertiseUrl is https://. */,
  peer: section({
    /** The name their certificate must hold, when they are reached at an address it does not name (a pod IP). */
    serverName: Type.String({ default: '', expected: 'a DNS name the replicas\' certificate holds, or "" for the advertiseUrl host' }),
    caPath: Type.String({ default: '', expected: 'a path to a PEM CA bundle for the replicas\' certificate, or "" for the system roots' }),
  }),
})

export interface CoordinationConfig {
  /** undefined: no shared leases, each replica fills its own misses. */
  redis: { url: string; keyPrefix: string; caPath: string | undefined } | undefined
  leaseTtl: number
  /** Without a trailing "/"; undefined when unset. */
  advertiseUrl: string | undefined
  /** TLS to the other replicas: the certificate name to expect and the CA to trust (undefined: the URL's host, the system roots). */
  peer: { serverName: string | undefined; caPath: string | undefined }
}

export const coordinationSchema = Type.Transform(rawCoordination)
  .Decode(({ redis, leaseTtl, advertiseUrl, peer: rawPeer }): CoordinationConfig => {
    const advertised = advertiseUrl === '' ? undefined : advertiseUrl.replace(/\/$/, '')
    const unset = (value: string): string | undefined => (value === '' ? undefined : value)
    const peer = { serverName: unset(rawPeer.serverName), caPath: unset(rawPeer.caPath) }
    if (redis.url === '') return { redis: undefined, leaseTtl, advertiseUrl: advertised, peer }
    if (!/^rediss?:\/\/[^/?#\s]+/i.test(redis.url)) {
      throw new ConfigIssue(['redis', 'url'], 'expected a redis:// or rediss:// URL like "redis://:password@redis:6379/0"')
    }
    if (advertised === undefined) {
      throw new ConfigIssue(['advertiseUrl'], 'required with coordination.redis.url: the http(s) URL the other replicas reach this one at')
    }
    const caPath = unset(redis.caPath)
    return { redis: { url: redis.url, keyPrefix: redis.keyPrefix, caPath }, leaseTtl, advertiseUrl: advertised, peer }
  })
  .Encode(({ redis, leaseTtl, advertiseUrl, peer }) => ({
    redis: { url: redis?.url ?? '', keyPrefix: redis?.keyPrefix ?? 'ferry:fill:', caPath: redis?.caPath ?? '' },
    leaseTtl,
    advertiseUrl: advertiseUrl ?? '',
    peer: { serverName: peer.serverName ?? '', caPath: peer.caPath ?? '' },
  }))
