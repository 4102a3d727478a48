// Fixtures for HTTP tests against a real Ferry: random blobs, manifest and index builders that
// keep the exact bytes they were serialised to, push helpers over fetch, error-body checks, a
// raw-socket client for requests fetch cannot send, and storage inspection.
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { connect } from 'node:net'
import { join, relative } from 'node:path'
import type { Test } from 'tap'
import { mediaTypes } from '../../src/core/media-types.js'
import type { TestServer } from './server.js'

export { mediaTypes }

export const layerGzip = 'application/vnd.oci.image.layer.v1.tar+gzip'
export const configType = 'application/vnd.oci.image.config.v1+json'
export const emptyDigest = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export type Algorithm = 'sha256' | 'sha512'

export function digestOf(bytes: Uint8Array | string, algorithm: Algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`
}

export function randomDigest(algorithm: Algorithm = 'sha256'): string {
  return digestOf(randomBytes(32), algorithm)
}

/** Bytes plus how they are described in a manifest. */
export interface Blob {
  bytes: Buffer
  digest: string
  size: number
  mediaType: string
}

export function makeBlob(bytes: Buffer | string, mediaType = layerGzip, algorithm: Algorithm = 'sha256'): Blob {
  const buffer = Buffer.from(bytes)
  return { bytes: buffer, digest: digestOf(buffer, algorithm), size: buffer.length, mediaType }
}

export function randomBlob(size: number, mediaType = layerGzip, algorithm: Algorithm = 'sha256'): Blob {
  return makeBlob(randomBytes(size), mediaType, algorithm)
}

/** A small unique image config. */
export function randomConfig(mediaType = configType, algorithm: Algorithm = 'sha256'): Blob {
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') }
  return makeBlob(JSON.stringify(config), mediaType, algorithm)
}

export type DescriptorJson = { mediaType: string; digest: string; size: number } & Record<string, unknown>

export function descriptorOf(item: Blob | Manifest, extra: Record<string, unknown> = {}): DescriptorJson {
  return { mediaType: item.mediaType, digest: item.digest, size: item.size, ...extra }
}

/** A manifest as pushed: the exact bytes, their digest, and the type to send as Content-Type. */
export interface Manifest {
  bytes: Buffer
  digest: string
  size: number
  mediaType: string
  json: Record<string, unknown>
}

export function encodeManifest(
  json: Record<string, unknown>,
  mediaType: string,
  algorithm: Algorithm = 'sha256',
  space?: number,
): Manifest {
  const bytes = Buffer.from(JSON.stringify(json, null, space))
  return { bytes, digest: digestOf(bytes, algorithm), size: bytes.length, mediaType, json }
}

export interface ImageOptions {
  config: Blob
  layers?: Array<Blob | DescriptorJson>
  subject?: Blob | Manifest | DescriptorJson
  artifactType?: string
  annotations?: Record<string, string>
  /** The document's mediaType field; null leaves it out (OCI makes it optional). */
  mediaType?: string | null
  algorithm?: Algorithm
  extra?: Record<string, unknown>
}

const asDescriptor = (item: Blob | Manifest | DescriptorJson): DescriptorJson =>
  Buffer.isBuffer(item.bytes) ? descriptorOf(item as Blob) : (item as DescriptorJson)

export function imageManifest(options: ImageOptions): Manifest {
  const mediaType = options.mediaType === undefined ? mediaTypes.ociManifest : options.mediaType
  const json: Record<string, unknown> = { schemaVersion: 2 }
  if (mediaType !== null) json.mediaType = mediaType
  if (options.artifactType !== undefined) json.artifactType = options.artifactType
  json.config = descriptorOf(options.config)
  json.layers = (options.layers ?? []).map(asDescriptor)
  if (options.subject !== undefined) json.subject = asDescriptor(options.subject)
  if (options.annotations !== undefined) json.annotations = options.annotations
  Object.assign(json, options.extra)
  return encodeManifest(json, mediaType ?? mediaTypes.ociManifest, options.algorithm)
}

export interface IndexOptions {
  manifests: Array<Manifest | DescriptorJson>
  subject?: Manifest | DescriptorJson
  artifactType?: string
  annotations?: Record<string, string>
  mediaType?: string
  algorithm?: Algorithm
}

export function imageIndex(options: IndexOptions): Manifest {
  const mediaType = options.mediaType ?? mediaTypes.ociIndex
  const json: Record<string, unknown> = { schemaVersion: 2, mediaType }
  if (options.artifactType !== undefined) json.artifactType = options.artifactType
  json.manifests = options.manifests.map(asDescriptor)
  if (options.subject !== undefined) json.subject = asDescriptor(options.subject)
  if (options.annotations !== undefined) json.annotations = options.annotations
  return encodeManifest(json, mediaType, options.algorithm)
}

/** fetch against the server with a path relative to its base URL. */
export function request(server: TestServer, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, init)
}

// Fixture pushes throw rather than assert, so they can run in t.before and outside subtests.
async function expectCreated(res: Response, what: string): Promise<void> {
  const body = await res.text()
  if (res.status !== 201) throw new Error(`${what}: expected 201, got ${res.status} ${body}`)
}

/** Monolithic single-POST upload; throws unless it answers 201. */
export async function pushBlob(server: TestServer, repo: string, blob: Blob): Promise<void> {
  const res = await request(server, `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(blob.digest)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: blob.bytes,
  })
  await expectCreated(res, `push blob ${blob.digest} to ${repo}`)
}

/** Manifest PUT whatever the outcome; the answer's body is read already, and readable again. */
export async function putManifest(
  server: TestServer,
  repo: string,
  reference: string,
  manifest: Manifest,
  contentType = manifest.mediaType,
): Promise<Response> {
  const res = await request(server, `/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body: manifest.bytes,
  })
  const body = await res.arrayBuffer()
  return new Response(body.byteLength > 0 ? body : null, { status: res.status, headers: res.headers })
}

/** Manifest PUT; throws unless it answers 201. */
export async function pushManifest(server: TestServer, repo: string, reference: string, manifest: Manifest): Promise<Response> {
  const res = await request(server, `/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType },
    body: manifest.bytes,
  })
  await expectCreated(res, `push manifest ${reference} to ${repo}`)
  return res
}

export interface Image {
  config: Blob
  layers: Blob[]
  manifest: Manifest
}

/** Pushes a config, `layerCount` random layers and the manifest (by `reference`, else by digest). */
export async function pushImage(
  server: TestServer,
  repo: string,
  reference?: string,
  options: Partial<ImageOptions> & { layerCount?: number } = {},
): Promise<Image> {
  const config = options.config ?? randomConfig()
  const layers = Array.from({ length: options.layerCount ?? 1 }, () => randomBlob(64 + Math.floor(Math.random() * 512)))
  for (const blob of [config, ...layers]) await pushBlob(server, repo, blob)
  const manifest = imageManifest({ ...options, config, layers })
  await pushManifest(server, repo, reference ?? manifest.digest, manifest)
  return { config, layers, manifest }
}

export interface ErrorJson {
  code: string
  message?: string
  detail?: string
}

/**
 * Asserts an OCI error response: the status, a JSON body `{"errors":[…]}` whose first code is
 * `code`, and a `detail` that is a string or absent (what the conformance suite can decode).
 */
export async function expectError(t: Test, res: Response, status: number, code: string, what = ''): Promise<ErrorJson> {
  const label = what === '' ? code : `${what}: ${code}`
  t.equal(res.status, status, `${label} status`)
  t.match(res.headers.get('content-type') ?? '', /^application\/json/, `${label} is JSON`)
  const body = (await res.json()) as { errors?: ErrorJson[] }
  t.ok(Array.isArray(body.errors) && body.errors.length > 0, `${label} has an errors array`)
  const first = body.errors?.[0] ?? { code: '' }
  t.equal(first.code, code, `${label} code`)
  t.ok(first.detail === undefined || typeof first.detail === 'string', `${label} detail is a string or absent`)
  t.ok(first.message === undefined || typeof first.message === 'string', `${label} message is a string or absent`)
  return first
}

export interface RawResponse {
  status: number
  /** Header lines in order, names lowercased. */
  headers: Array<[string, string]>
  header(name: string): string | undefined
  body: Buffer
}

/**
 * Sends bytes verbatim over a fresh socket and reads the response until the server closes it
 * (send `Connection: close`). For requests fetch would normalise or refuse to send.
 */
export function rawHttp(server: TestServer, payload: string | Buffer): Promise<RawResponse> {
  const { hostname, port } = new URL(server.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(payload))
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      try {
        resolve(parseRawResponse(Buffer.concat(chunks)))
      } catch (err) {
        reject(err)
      }
    })
  })
}

function parseRawResponse(raw: Buffer): RawResponse {
  const split = raw.indexOf('\r\n\r\n')
  if (split < 0) throw new Error(`no complete response head: ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`)
  const [statusLine = '', ...lines] = raw.subarray(0, split).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1])
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
  let body = raw.subarray(split + 4)
  const header = (name: string) => headers.find(([key]) => key === name)?.[1]
  if (header('transfer-encoding') === 'chunked') body = dechunk(body)
  return { status, headers, header, body }
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = []
  for (let at = 0; at < body.length;) {
    const lineEnd = body.indexOf('\r\n', at)
    const size = Number.parseInt(body.subarray(at, lineEnd).toString('latin1'), 16)
    if (!size) break
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

/** Every file (not folder) under `dir`, relative to it, sorted; [] when `dir` is absent. */
export async function listFiles(dir: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true })
  } catch {
    return []
  }
  return entries
    .filter((entry) => !entry.isDirectory())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort()
}

/** Files in the server's global blob store. */
export function storedBlobFiles(server: TestServer): Promise<string[]> {
  return storedFiles(server, 'blobs')
}

/** Files under `dir` in the server's storage (filesystem or S3), relative to it, sorted. */
export async function storedFiles(server: Pick<TestServer, 'driver'>, dir: string): Promise<string[]> {
  const files: string[] = []
  for (const name of await server.driver.list(dir)) {
    const info = await server.driver.stat(`${dir}/${name}`)
    if (info?.isDirectory) files.push(...(await storedFiles(server, `${dir}/${name}`)).map((file) => `${name}/${file}`))
    else if (info) files.push(name)
  }
  return files.sort()
}
