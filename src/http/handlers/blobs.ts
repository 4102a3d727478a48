import { parseDigest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { mediaTypes } from '../../core/media-types.js'
import { rangeLength } from '../../core/range.js'
import type { RepositoryName } from '../../core/reference.js'
import type { HandlerContext } from '../handler-context.js'

type BlobEndpoint = { name: RepositoryName; digest: string }

export async function getBlob(ctx: HandlerContext, endpoint: BlobEndpoint, head: boolean): Promise<void> {
  const digest = parseDigest(endpoint.digest)
  const blobs = ctx.repository(endpoint.name).blobs
  const common = { 'docker-content-digest': digest, 'accept-ranges': 'bytes', etag: `"${digest}"`, 'cache-control': 'max-age=31536000' }
  if (head) {
    const info = await blobs.stat(digest, ctx.op)
    if (!info) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest })
    ctx.reply.headers({ ...common, 'content-type': mediaTypes.octetStream, 'content-length': String(info.size) }).send()
    return
  }
  // One call, no stat first: for a mirror a stat of an uncached blob would cost an upstream HEAD.
  const rangeHeader = ctx.request.headers.range
  const body = await blobs.open(digest, rangeHeader === undefined ? ctx.op : { ...ctx.op, rangeHeader })
  if (body.kind === 'redirect') {
    ctx.reply.code(307).header('location', body.url).send()
    return
  }
  ctx.reply.headers({ ...common, 'content-type': mediaTypes.octetStream })
  const length = body.range ? rangeLength(body.range) : body.size
  if (body.range) {
    ctx.reply.code(206).header('content-range', `bytes ${body.range.start}-${body.range.end}/${body.size}`)
  }
  ctx.reply.header('content-length', String(length))
  if (length === 0) return ctx.reply.send(body.stream)
  try {
    await ctx.sender.send(ctx.reply, body.stream, { digest, size: body.size, start: body.range?.start ?? 0, length })
  } catch (err) {
    // Failed before its first byte (nothing sent): the error answers instead, without the blob's headers.
    if (!ctx.reply.sent) for (const name of blobHeaders) ctx.reply.removeHeader(name)
    throw err
  }
}

/** Headers of a blob body that an error answered in its place must not carry. */
const blobHeaders = ['docker-content-digest', 'accept-ranges', 'etag', 'cache-control', 'content-range', 'content-length', 'content-type']

export async function deleteBlob(ctx: HandlerContext, endpoint: BlobEndpoint): Promise<void> {
  if (!ctx.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry')
  const digest = parseDigest(endpoint.digest)
  await ctx.repository(endpoint.name).blobs.delete(digest, ctx.op)
  ctx.reply.code(202).header('content-length', '0').send()
}
