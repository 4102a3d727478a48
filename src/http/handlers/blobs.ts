import { parseDigest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { mediaTypes } from '../../core/media-types.js'
import { isFileDescriptorSource, isGrowingFileSource, isPositionalSource, isSharedChunkSource } from '../../core/pull-source.js'
import { rangeLength } from '../../core/range.js'
import type { RepositoryName } from '../../core/reference.js'
import type { HandlerContext } from '../handler-context.js'
import { nativeSendfile } from '../native-sendfile.js'
import { sendFileRange, sendfileSocket, sendGrowingFile } from '../send-file.js'
import { sendShared, sendStored } from '../send-pulled.js'

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
  // Over plain HTTP/1.1 the kernel sends a stored file, or a fill's upload file as it grows
  // (sendfile). Otherwise a stored file goes out from blocks shared with concurrent downloads of
  // the same blob, a fill from its shared blocks, anything else (e.g. the memory driver) piped.
  const start = body.range?.start ?? 0
  const sendfile = ctx.options.sendfile && sendfileSocket(ctx.reply) !== undefined ? nativeSendfile().native : undefined
  if (sendfile && isFileDescriptorSource(body.stream)) return sendFileRange(ctx.reply, sendfile, body.stream, start, length)
  if (sendfile && isGrowingFileSource(body.stream) && (await sendGrowingFile(ctx.reply, sendfile, body.stream))) return
  if (isPositionalSource(body.stream)) return sendStored(ctx.reply, body.stream, digest, start, length, body.size)
  if (isSharedChunkSource(body.stream)) return sendShared(ctx.reply, body.stream, length)
  return ctx.reply.send(body.stream)
}

export async function deleteBlob(ctx: HandlerContext, endpoint: BlobEndpoint): Promise<void> {
  if (!ctx.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry')
  const digest = parseDigest(endpoint.digest)
  await ctx.repository(endpoint.name).blobs.delete(digest, ctx.op)
  ctx.reply.code(202).header('content-length', '0').send()
}
