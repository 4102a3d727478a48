// Reading images from registries through Ferry's OCI client (client/registry-client.ts): one
// client per registry host, manifests fetched whole and checked against the digest they were
// asked by, blobs streamed and verified (size and digest) as they pass.
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { createDigestHash, digestAlgorithm, digestBytes, digestEncoded, digestOfHash, tryParseDigest, type Digest } from '../core/digest.js'
import { maxManifestBytes, parseManifest, type Descriptor } from '../core/manifest.js'
import { baseMediaType, manifestMediaTypes, mediaTypes } from '../core/media-types.js'
import type { RegistryClient } from '../client/registry-client.js'
import { registryHost, type ImageRef } from './image-ref.js'

export interface FetchedManifest {
  digest: Digest
  mediaType: string
  bytes: Buffer
}

/** Makes the client for a registry host (`gcr.io`, `127.0.0.1:5000`); called once per host. */
export type ClientFactory = (host: string) => RegistryClient

export class RegistrySource {
  readonly #factory: ClientFactory
  readonly #clients = new Map<string, RegistryClient>()

  constructor(factory: ClientFactory) {
    this.#factory = factory
  }

  #client(domain: string): RegistryClient {
    const host = registryHost(domain)
    let client = this.#clients.get(host)
    if (client === undefined) {
      client = this.#factory(host)
      this.#clients.set(host, client)
    }
    return client
  }

  /** The manifest `ref` names (its digest when it has one, else its tag). */
  manifest(ref: ImageRef, reference: string = ref.digest ?? ref.tag ?? 'latest', signal?: AbortSignal): Promise<FetchedManifest> {
    return this.#manifest(ref, reference, signal)
  }

  async #manifest(ref: ImageRef, reference: string, signal: AbortSignal | undefined): Promise<FetchedManifest> {
    const client = this.#client(ref.domain)
    const what = `${ref.domain}/${ref.repository}${reference.includes(':') ? '@' : ':'}${reference}`
    const response = await client.request({
      method: 'GET',
      path: `/v2/${ref.repository}/manifests/${reference}`,
      headers: { accept: manifestMediaTypes.join(', ') },
      scope: `repository:${ref.repository}:pull`,
      ...(signal ? { signal } : {}),
    })
    if (response.status !== 200) {
      await response.dump()
      throw new Error(`${what}: the registry answered ${response.status}${response.status === 404 ? ' (no such image)' : ''}`)
    }
    const bytes = await response.read(maxManifestBytes)
    const digest = digestBytes(bytes)
    const asked = tryParseDigest(reference)
    if (asked !== undefined && asked !== digest) throw new Error(`${what}: the manifest's bytes hash to ${digest}`)
    const mediaType = baseMediaType(response.header('content-type')) || mediaTypeOf(bytes)
    return { digest, mediaType: manifestMediaTypes.includes(mediaType) ? mediaType : mediaTypeOf(bytes), bytes }
  }

  /**
   * The manifests whose `subject` is `digest` (signatures, SBOMs): the referrers API, or on a
   * registry without one the tag `sha256-<hex>` OCI 1.1 clients keep as its fallback index.
   */
  async referrers(ref: ImageRef, digest: Digest, signal?: AbortSignal): Promise<Descriptor[]> {
    const client = this.#client(ref.domain)
    const what = `${ref.domain}/${ref.repository}: referrers of ${digest}`
    const listed = async (path: string): Promise<Descriptor[] | undefined> => {
      const response = await client.request({
        method: 'GET',
        path,
        headers: { accept: mediaTypes.ociIndex },
        scope: `repository:${ref.repository}:pull`,
        ...(signal ? { signal } : {}),
      })
      if (response.status !== 200) {
        await response.dump()
        if (response.status === 404 || response.status === 400 || response.status === 405) return undefined
        throw new Error(`${what}: the registry answered ${response.status}`)
      }
      const bytes = await response.read(maxManifestBytes)
      try {
        return parseManifest(bytes, mediaTypes.ociIndex).manifests
      } catch (err) {
        throw new Error(`${what}: not an image index (${(err as Error).message})`, { cause: err })
      }
    }
    const api = await listed(`/v2/${ref.repository}/referrers/${digest}`)
    if (api !== undefined) return api
    return (await listed(`/v2/${ref.repository}/manifests/${referrersTag(digest)}`)) ?? []
  }

  /** A blob's bytes; the stream fails at its end unless they are `size` bytes hashing to `digest`. */
  async blob(ref: ImageRef, digest: Digest, size: number, signal?: AbortSignal): Promise<Readable> {
    const client = this.#client(ref.domain)
    const response = await client.request({
      method: 'GET',
      path: `/v2/${ref.repository}/blobs/${digest}`,
      scope: `repository:${ref.repository}:pull`,
      ...(signal ? { signal } : {}),
    })
    if (response.status !== 200) {
      await response.dump()
      throw new Error(`${ref.domain}/${ref.repository}: blob ${digest}: the registry answered ${response.status}`)
    }
    const checked = verifying(digest, size, `${ref.domain}/${ref.repository}: blob ${digest}`)
    response.body.once('error', (err) => checked.destroy(err))
    return response.body.pipe(checked)
  }

  async close(): Promise<void> {
    await Promise.all([...this.#clients.values()].map((client) => client.close()))
  }
}

/** The media type a manifest declares, or what its shape says (OCI makes the field optional). */
export function mediaTypeOf(bytes: Buffer): string {
  const document = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown }
  if (typeof document.mediaType === 'string') return document.mediaType
  return Array.isArray(document.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json'
}

/** Passes bytes through, failing at the end unless they are `size` bytes hashing to `digest`. */
export function verifying(digest: Digest, size: number, what: string): Transform {
  const algorithm = digestAlgorithm(digest)
  const hash = createDigestHash(algorithm)
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length
      if (seen > size) return callback(new Error(`${what}: more than the ${size} bytes its descriptor gives`))
      hash.update(chunk)
      callback(null, chunk)
    },
    flush(callback: TransformCallback) {
      const actual = digestOfHash(algorithm, hash)
      if (actual === digest && seen === size) return callback()
      callback(new Error(`${what}: ${seen} bytes hash to ${actual}, not the ${size} bytes of ${digest}`))
    },
  })
}

/** The OCI 1.1 referrers tag schema: the fallback index of `digest`'s referrers is tagged `<alg>-<hex>`. */
export function referrersTag(digest: Digest): string {
  return `${digestAlgorithm(digest)}-${digestEncoded(digest)}`
}
