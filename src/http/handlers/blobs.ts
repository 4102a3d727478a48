import { parseDigest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { mediaTypes } from '../../core/media-types.js'
import { parseRangeHeader, rangeLength } from '../../core/range.js'
import type { RepositoryName } from '../../core/reference.js'
import type { HandlerContext } from '../handler-context.js'

type BlobEndpoint = { name: RepositoryName; digest: string }

export async function getBlob(ctx: HandlerContext, endpoint: BlobEndpoint, head: boolean): Promise<void> {
  const digest = parseDigest(endpoint.digest)
  const blobs = ctx.repository(endpoint.name).blobs
  const info = await blobs.stat(digest, ctx.op)
  if (!info) throw new RegistryError('BLOB_UNKNOWN', undefined, { digest })
  ctx.reply.headers({
    'docker-content-digest': digest,
    'accept-ranges': 'bytes',
    etag: `"${digest}"`,
    'cache-control': 'max-age=31536000',
  })
  if (head) {
    ctx.reply.headers({ 'content-type': mediaTypes.octetStream, 'content-length': String(info.size) }).send()
    return
  }
  const request = parseRangeHeader(ctx.request.headers.range, info.size)
  if (request.kind === 'unsatisfiable') {
    throw new RegistryError('RANGE_INVALID', 'requested range is not satisfiable', { size: info.size }, {
      status: 416,
      headers: { 'content-range': `bytes */${info.size}` },
    })
  }
  const range = request.kind === 'satisfiable' ? request.range : undefined
  const body = await blobs.open(digest, range ? { ...ctx.op, range } : ctx.op)
  if (body.kind === 'redirect') {
    ctx.reply.code(307).header('location', body.url).send()
    return
  }
  ctx.reply.header('content-type', mediaTypes.octetStream)
  if (range) {
    ctx.reply.code(206).headers({
      'content-range': `bytes ${range.start}-${range.end}/${info.size}`,
      'content-length': String(rangeLength(range)),
    })
  } else {
    ctx.reply.header('content-length', String(info.size))
  }
  return ctx.reply.send(body.stream)
}

export async function deleteBlob(ctx: HandlerContext, endpoint: BlobEndpoint): Promise<void> {
  if (!ctx.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry')
  const digest = parseDigest(endpoint.digest)
  await ctx.repository(endpoint.name).blobs.delete(digest, ctx.op)
  ctx.reply.code(202).header('content-length', '0').send()
}
