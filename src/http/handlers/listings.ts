import { parseDigest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { mediaTypes } from '../../core/media-types.js'
import { parsePage, type Page, type PageResult } from '../../core/pagination.js'
import type { RepositoryName } from '../../core/reference.js'
import type { HandlerContext } from '../handler-context.js'
import { repositoryBase } from '../oci-path.js'

export async function listTags(ctx: HandlerContext, { name }: { name: RepositoryName }): Promise<void> {
  const page = parsePage(ctx.query)
  const result = await ctx.repository(name).tags.list(page, ctx.op)
  if (!result) throw new RegistryError('NAME_UNKNOWN', undefined, { name })
  sendPage(ctx, `${repositoryBase(name)}/tags/list`, page, result)
  ctx.reply.send({ name, tags: result.items })
}

export async function listCatalog(ctx: HandlerContext): Promise<void> {
  const page = parsePage(ctx.query)
  const result = await ctx.registry.catalog(page, ctx.op)
  sendPage(ctx, '/v2/_catalog', page, result)
  ctx.reply.send({ repositories: result.items })
}

export async function listReferrers(ctx: HandlerContext, { name, digest }: { name: RepositoryName; digest: string }): Promise<void> {
  const subject = parseDigest(digest)
  const artifactType = ctx.query.artifactType || undefined
  const manifests = await ctx.repository(name).manifests.referrers(subject, artifactType ? { artifactType } : {}, ctx.op)
  if (artifactType) ctx.reply.header('oci-filters-applied', 'artifactType')
  // A Buffer, not a string: fastify would append `; charset=utf-8` to a +json type, and clients
  // compare this Content-Type exactly.
  ctx.reply
    .header('content-type', mediaTypes.ociIndex)
    .send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests })))
}

/** Adds the RFC 8288 `Link` header pointing at the next page, when there is one. */
function sendPage(ctx: HandlerContext, path: string, page: Page, result: PageResult): void {
  if (result.next === undefined) return
  const query = new URLSearchParams({ n: String(page.n ?? result.items.length), last: result.next })
  ctx.reply.header('link', `<${path}?${query.toString()}>; rel="next"`)
}
