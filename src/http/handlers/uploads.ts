import { parseDigest, type Digest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { parseUploadContentRange, rangeLength, uploadRangeHeader } from '../../core/range.js'
import { parseRepositoryName, type RepositoryName } from '../../core/reference.js'
import type { AppendOptions, UploadStatus } from '../../core/registry.js'
import type { HandlerContext } from '../handler-context.js'
import { repositoryBase } from '../oci-path.js'
import { declaredLength, hasBody } from '../request-io.js'

type UploadEndpoint = { name: RepositoryName; id: string }

/** POST /v2/<name>/blobs/uploads/: mount, monolithic upload, or the start of a session. */
export async function startUpload(ctx: HandlerContext, { name }: { name: RepositoryName }): Promise<void> {
  const blobs = ctx.repository(name).blobs
  const { mount, from, digest } = ctx.query
  if (mount !== undefined && from !== undefined) {
    const mountDigest = parseDigest(mount)
    const mounted = await blobs.mount(parseRepositoryName(from), mountDigest, ctx.op)
    if (mounted) return sendBlobCreated(ctx, name, mountDigest)
    // The source lacks it: fall through to an ordinary upload, as the spec asks.
  }
  if (digest !== undefined && mount === undefined) {
    const expected = parseDigest(digest)
    if (blobs.uploads.put) {
      await blobs.uploads.put(expected, ctx.request.raw, appendOptions(ctx, undefined))
      return sendBlobCreated(ctx, name, expected)
    }
    const session = await blobs.uploads.start(ctx.op)
    try {
      await blobs.uploads.complete(session.id, expected, ctx.request.raw, appendOptions(ctx, undefined))
    } catch (err) {
      await blobs.uploads.cancel(session.id).catch(() => {})
      throw err
    }
    return sendBlobCreated(ctx, name, expected)
  }
  sendUploadStatus(ctx, name, await blobs.uploads.start(ctx.op), 202)
}

export async function patchUpload(ctx: HandlerContext, { name, id }: UploadEndpoint): Promise<void> {
  const uploads = ctx.repository(name).blobs.uploads
  const status = await uploads.append(id, ctx.request.raw, appendOptions(ctx, ctx.request.headers['content-range']))
  sendUploadStatus(ctx, name, status, 202)
}

export async function putUpload(ctx: HandlerContext, { name, id }: UploadEndpoint): Promise<void> {
  if (ctx.query.digest === undefined) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required')
  const digest = parseDigest(ctx.query.digest)
  const uploads = ctx.repository(name).blobs.uploads
  const body = hasBody(ctx.request.raw) ? ctx.request.raw : undefined
  await uploads.complete(id, digest, body, appendOptions(ctx, ctx.request.headers['content-range']))
  sendBlobCreated(ctx, name, digest)
}

export async function getUpload(ctx: HandlerContext, { name, id }: UploadEndpoint): Promise<void> {
  const status = await ctx.repository(name).blobs.uploads.status(id, ctx.op)
  sendUploadStatus(ctx, name, status, 204)
}

export async function deleteUpload(ctx: HandlerContext, { name, id }: UploadEndpoint): Promise<void> {
  await ctx.repository(name).blobs.uploads.cancel(id, ctx.op)
  ctx.reply.code(204).send()
}

/** Offset and length of a chunk, from Content-Range and Content-Length, checked for agreement. */
function appendOptions(ctx: HandlerContext, contentRange: string | undefined): AppendOptions {
  const options: AppendOptions = { ...ctx.op }
  const length = declaredLength(ctx.request.raw)
  if (length !== undefined) options.length = length
  if (contentRange === undefined) return options
  const range = parseUploadContentRange(contentRange)
  if (!range) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'invalid Content-Range', { contentRange: contentRange.slice(0, 100) }, { status: 416 })
  }
  if (length !== undefined && length !== rangeLength(range)) {
    throw new RegistryError('SIZE_INVALID', 'Content-Length does not match Content-Range', { contentRange, contentLength: length })
  }
  return { ...options, offset: range.start, length: rangeLength(range) }
}

function sendBlobCreated(ctx: HandlerContext, name: RepositoryName, digest: Digest): void {
  ctx.reply
    .code(201)
    .headers({ location: `${repositoryBase(name)}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': '0' })
    .send()
}

function sendUploadStatus(ctx: HandlerContext, name: RepositoryName, status: UploadStatus, code: 202 | 204): void {
  ctx.reply
    .code(code)
    .headers({
      location: `${repositoryBase(name)}/blobs/uploads/${status.id}`,
      range: uploadRangeHeader(status.size),
      'docker-upload-uuid': status.id,
      'content-length': '0',
    })
    .send()
}
