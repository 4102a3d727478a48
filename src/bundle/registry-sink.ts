// The bundle sink over Ferry's OCI client (client/registry-client.ts, the client the mirror uses
// upstream): Basic or Bearer auth, CA bundles through its transport. Pushes are not idempotent at
// the HTTP level, so each operation (an upload is POST + PUT) is retried here as a whole, with
// backoff, when the connection failed or the registry answered 429 or 5xx. Uploads carry their
// digest (`PUT ?digest=`), which the registry verifies before committing anything.
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { tryParseDigest, type Digest } from '../core/digest.js'
import { maxManifestBytes } from '../core/manifest.js'
import { manifestMediaTypes } from '../core/media-types.js'
import { ClientError } from '../client/client-error.js'
import type { ClientResponse } from '../client/http-exchange.js'
import type { RegistryClient } from '../client/registry-client.js'
import { backoffDelay, retryPolicy, type RetryOptions, type RetryPolicy } from '../client/retry.js'
import { ContentMismatchError, FatalSinkError, StreamedOnceError, type BundleSink, type WrittenBlob } from './sink.js'
import { StreamedOnce } from './streamed-once.js'

class StatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The OCI error codes of the answer's body. */
    readonly codes: readonly string[] = [],
  ) {
    super(message)
    this.name = 'StatusError'
  }
}

const maxErrorBody = 64 * 1024

export class RegistrySink implements BundleSink {
  readonly writeBlobNeedsDigest = true
  readonly #client: RegistryClient
  readonly #retry: RetryPolicy

  constructor(client: RegistryClient, retries: RetryOptions = { maxRetries: 4, baseDelayMs: 500, maxDelayMs: 10_000 }) {
    this.#client = client
    this.#retry = retryPolicy(retries)
  }

  /** Checks that the registry answers and takes our credentials; throws FatalSinkError if not. */
  async ping(signal?: AbortSignal): Promise<void> {
    try {
      await this.#retrying(signal, async () => {
        const response = await this.#client.request({ method: 'GET', path: '/v2/', ...opt(signal) })
        if (response.status === 200) return void (await response.dump())
        throw await this.#failure(response, 'GET /v2/')
      })
    } catch (err) {
      if (err instanceof FatalSinkError) throw err
      const fatal = this.#fatal(err)
      throw fatal instanceof FatalSinkError
        ? fatal
        : new FatalSinkError(`${this.#client.url.host}: ${(err as Error).message}`, { cause: err })
    }
  }

  hasBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    return this.#retrying(signal, async () => {
      const response = await this.#client.request({
        method: 'HEAD',
        path: `/v2/${repo}/blobs/${digest}`,
        scope: pull(repo),
        ...opt(signal),
      })
      await response.dump()
      if (response.status === 200) return true
      if (response.status === 404 || unsure(response.status)) return false
      throw await this.#failure(response, `HEAD ${repo} blob ${digest}`)
    })
  }

  putBlob(
    repo: string,
    digest: Digest,
    size: number,
    open: () => Readable,
    signal?: AbortSignal,
    lend?: () => AsyncIterable<Buffer>,
  ): Promise<void> {
    return this.#retrying(signal, async () => {
      const location = await this.#startUpload(repo, signal)
      location.searchParams.set('digest', digest)
      // The registry checks the digest (the OCI spec says it must); bytes that the bundle reader
      // found not to match end their stream with ContentMismatchError, which is final.
      let mismatch: ContentMismatchError | undefined
      const noted = (err: unknown): void => {
        if (err instanceof ContentMismatchError) mismatch = err
      }
      const body = (): Readable | AsyncIterable<Buffer> => {
        if (lend !== undefined) return noting(lend(), noted)
        const stream = open()
        stream.once('error', noted)
        return stream
      }
      let response: ClientResponse
      try {
        response = await this.#client.request({
          method: 'PUT',
          path: `${location.pathname}${location.search}`,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
          body,
          scope: push(repo),
          ...opt(signal),
        })
      } catch (err) {
        throw mismatch ?? err
      }
      if (response.status === 201 && mismatch === undefined) return void (await response.dump())
      throw mismatch ?? refusedContent(await this.#failure(response, `PUT ${repo} blob ${digest}`), digest)
    })
  }

  /**
   * Streams a blob the bundle names by digest to the registry as its bytes pass, read once: POST,
   * then one PUT `?digest=` carrying them (the registry checks the digest before it commits).
   * Resolves once every byte has passed, with `committed` the PUT's answer. A PUT that fails
   * cannot be sent again, the bytes having gone: `committed` then rejects with a StreamedOnceError
   * (the rest of the blob is read and dropped, so the bundle reads on), and the caller sends the
   * blob again from another reading of the bundle. A 400 DIGEST_INVALID becomes ContentMismatchError
   * (refusedContent).
   */
  async writeBlob(repo: string, stream: Readable, size: number, expected: Digest | undefined, signal?: AbortSignal): Promise<WrittenBlob> {
    if (expected === undefined) throw new Error(`a blob streamed to ${this.#client.url.host} needs its digest`)
    const location = await this.#retrying(signal, () => this.#startUpload(repo, signal))
    location.searchParams.set('digest', expected)
    const source = new StreamedOnce(stream)
    const put = this.#client
      .request({
        method: 'PUT',
        path: `${location.pathname}${location.search}`,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: () => source.body(),
        scope: push(repo),
        ...opt(signal),
      })
      .then(async (response) => {
        if (response.status === 201) return void (await response.dump())
        throw refusedContent(await this.#failure(response, `PUT ${repo} blob ${expected}`), expected)
      })
    const committed = put.catch((err: unknown) => {
      if (source.failure !== undefined) throw source.failure
      // A definite answer (a mismatch, 403, refused credentials) is final; a failed or cut request is sent again.
      if (signal?.aborted || err instanceof ContentMismatchError || (err instanceof StatusError && !transient(err))) throw err
      const fatal = this.#fatal(err)
      if (fatal instanceof FatalSinkError) throw fatal
      throw new StreamedOnceError(`${(err as Error).message} (the blob is read from the bundle again)`, { cause: err })
    })
    committed.catch(() => undefined)
    // The bytes have passed once the PUT took them all, or once it failed and the rest was dropped.
    // (Not after a cancel: the run is ending.)
    await Promise.race([source.passed, put.catch(() => (signal?.aborted ? undefined : source.drain()))])
    if (source.failure !== undefined) throw source.failure
    return { digest: expected, committed }
  }

  mountBlob(repo: string, digest: Digest, from: string, signal?: AbortSignal): Promise<boolean> {
    return this.#retrying(signal, async () => {
      const query = new URLSearchParams({ mount: digest, from })
      const response = await this.#client.request({
        method: 'POST',
        path: `/v2/${repo}/blobs/uploads/?${query.toString()}`,
        headers: { 'content-length': '0' },
        scope: `${push(repo)} ${pull(from)}`,
        ...opt(signal),
      })
      await response.dump()
      if (response.status === 201) return true
      if (response.status === 202) {
        // The registry opened an upload session instead: close it, nothing was linked.
        const location = response.header('location')
        if (location !== undefined) await this.#cancel(repo, location, signal)
        return false
      }
      throw await this.#failure(response, `mount ${digest} from ${from} into ${repo}`)
    })
  }

  resolveManifest(repo: string, reference: string, signal?: AbortSignal): Promise<Digest | undefined> {
    return this.#retrying(signal, async () => {
      const response = await this.#client.request({
        method: 'HEAD',
        path: `/v2/${repo}/manifests/${reference}`,
        headers: { accept: manifestMediaTypes.join(', ') },
        scope: pull(repo),
        ...opt(signal),
      })
      await response.dump()
      if (response.status === 404 || unsure(response.status)) return undefined
      if (response.status !== 200) throw await this.#failure(response, `HEAD ${repo} manifest ${reference}`)
      return tryParseDigest(response.header('docker-content-digest') ?? '')
    })
  }

  putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<void> {
    return this.#retrying(signal, async () => {
      const response = await this.#client.request({
        method: 'PUT',
        path: `/v2/${repo}/manifests/${reference}`,
        headers: { 'content-type': mediaType },
        body: bytes,
        scope: push(repo),
        ...opt(signal),
      })
      if (response.status === 201) return void (await response.dump())
      throw await this.#failure(response, `PUT ${repo} manifest ${reference}`)
    })
  }

  readManifest(repo: string, reference: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string } | undefined> {
    return this.#retrying(signal, async () => {
      const response = await this.#client.request({
        method: 'GET',
        path: `/v2/${repo}/manifests/${reference}`,
        headers: { accept: manifestMediaTypes.join(', ') },
        scope: pull(repo),
        ...opt(signal),
      })
      if (response.status !== 200) {
        if (response.status === 404 || unsure(response.status)) return void (await response.dump())
        throw await this.#failure(response, `GET ${repo} manifest ${reference}`)
      }
      const mediaType = response.header('content-type') ?? ''
      return { bytes: await response.read(maxManifestBytes), mediaType }
    })
  }

  /**
   * DELETE of a blob link. Best effort, not retried: a registry that refuses it (deletes disabled,
   * no delete permission) or fails answers false, and the blob stays where it was.
   */
  async deleteBlob(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    try {
      const response = await this.#client.request({
        method: 'DELETE',
        path: `/v2/${repo}/blobs/${digest}`,
        scope: `repository:${repo}:delete`,
        ...opt(signal),
      })
      await response.dump()
      return response.status === 202 || response.status === 200 || response.status === 404
    } catch (err) {
      if (signal?.aborted) throw err
      return false
    }
  }

  async #startUpload(repo: string, signal: AbortSignal | undefined): Promise<URL> {
    const response = await this.#client.request({
      method: 'POST',
      path: `/v2/${repo}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      scope: push(repo),
      ...opt(signal),
    })
    const location = response.header('location')
    if (response.status !== 202 || location === undefined) throw await this.#failure(response, `POST ${repo} upload`)
    await response.dump()
    const url = new URL(location, this.#client.url)
    if (url.origin !== this.#client.url.origin) throw new Error(`${this.#client.url.host} sent uploads to another origin (${url.host})`)
    return url
  }

  async #cancel(repo: string, location: string, signal: AbortSignal | undefined): Promise<void> {
    const url = new URL(location, this.#client.url)
    if (url.origin !== this.#client.url.origin) return
    try {
      const response = await this.#client.request({
        method: 'DELETE',
        path: `${url.pathname}${url.search}`,
        scope: push(repo),
        ...opt(signal),
      })
      await response.dump()
    } catch {
      // An abandoned session expires on its own.
    }
  }

  /** An error for an unexpected answer: OCI error codes quoted; 401 ends the run. */
  async #failure(response: ClientResponse, what: string): Promise<Error> {
    let errors: Array<{ code?: string; message?: string }> = []
    try {
      const body = (await response.read(maxErrorBody)).toString('utf8')
      errors = (JSON.parse(body) as { errors?: typeof errors }).errors ?? []
    } catch {
      await response.dump()
    }
    const detail = errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ')
    const message = `${what}: ${response.status}${detail ? ` ${detail}` : ''}`
    if (response.status === 401) return new FatalSinkError(`${this.#client.url.host} refused the credentials (${message})`)
    const codes = errors.flatMap((e) => (typeof e.code === 'string' ? [e.code] : []))
    return new StatusError(message, response.status, codes)
  }

  /** Client failures other than a connection that failed or timed out (auth, TLS, protocol) end the run. */
  #fatal(err: unknown): unknown {
    if (!(err instanceof ClientError) || err.kind === 'timeout' || err.kind === 'unreachable') return err
    const host = this.#client.url.host
    const message = err.kind === 'auth' ? `${host} refused the credentials (${err.message})` : `${host}: ${err.message}`
    return new FatalSinkError(message, { cause: err })
  }

  async #retrying<T>(signal: AbortSignal | undefined, operation: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await operation()
      } catch (err) {
        if (!transient(err) || attempt >= this.#retry.maxRetries || signal?.aborted) {
          throw this.#fatal(err)
        }
        await sleep(backoffDelay(attempt, this.#retry), undefined, signal ? { signal } : {})
      }
    }
  }
}

/**
 * A HEAD that cannot say whether the content is there: pushing it is then always right. A Ferry
 * mirror answers 503 for what it has neither locally nor from an upstream it cannot reach, which
 * is every new image on an air-gapped site.
 */
function unsure(status: number): boolean {
  return status === 429 || status >= 500
}

/** `chunks` as they are, telling `onError` what ended them. */
async function* noting(chunks: AsyncIterable<Buffer>, onError: (err: unknown) => void): AsyncGenerator<Buffer> {
  try {
    yield* chunks
  } catch (err) {
    onError(err)
    throw err
  }
}

function transient(err: unknown): boolean {
  if (err instanceof StatusError) return err.status === 429 || err.status >= 500
  return err instanceof ClientError && (err.kind === 'unreachable' || err.kind === 'timeout')
}

function pull(repo: string): string {
  return `repository:${repo}:pull`
}

function push(repo: string): string {
  return `repository:${repo}:pull,push`
}

function opt(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal ? { signal } : {}
}

/** A PUT's failure; the registry's DIGEST_INVALID or SIZE_INVALID (the bytes are not the blob) as ContentMismatchError, which is final. */
function refusedContent(failure: Error, digest: Digest): Error {
  if (failure instanceof StatusError && failure.codes.some((code) => code === 'DIGEST_INVALID' || code === 'SIZE_INVALID')) {
    return new ContentMismatchError(`content does not match its digest ${digest} (${failure.message})`)
  }
  return failure
}
