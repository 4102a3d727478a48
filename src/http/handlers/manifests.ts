import { RegistryError } from '../../core/errors.js'
import { maxManifestBytes } from '../../core/manifest.js'
import { isAcceptable } from '../../core/media-types.js'
import { isTag, parseReference, type RepositoryName } from '../../core/reference.js'
import type { HandlerContext } from '../handler-context.js'
import { repositoryBase } from '../oci-path.js'
import { readBoundedBody } from '../request-io.js'

type ManifestEndpoint = { name: RepositoryName; reference: string }

export async function getManifest(ctx: HandlerContext, { name, reference }: ManifestEndpoint, head: boolean): Promise<void> {
  const repo = ctx.repository(name)
  // A reference that cannot name anything is simply not found (the conformance suite insists on
  // 404 for a malformed tag); a malformed digest stays a 400 DIGEST_INVALID.
  if (!reference.includes(':') && !isTag(reference))
    throw new RegistryError('MANIFEST_UNKNOWN', undefined, { tag: reference.slice(0, 200) })
  const ref = parseReference(reference)
  // A GET by digest reads the manifest at once: one lookup, and a mirror miss that cannot be
  // fetched surfaces as UNAVAILABLE rather than as "unknown".
  const fetched = ref.kind === 'digest' && !head ? await repo.manifests.get(ref.digest, ctx.op) : undefined
  const descriptor =
    fetched?.descriptor ??
    (ref.kind === 'tag' ? await repo.tags.resolve(ref.tag, ctx.op) : head ? await repo.manifests.stat(ref.digest, ctx.op) : undefined)
  if (!descriptor) throw new RegistryError('MANIFEST_UNKNOWN', undefined, ref.kind === 'tag' ? { tag: ref.tag } : { digest: ref.digest })
  if (!isAcceptable(descriptor.mediaType, ctx.op.accept ?? [])) {
    throw new RegistryError('MANIFEST_UNKNOWN', 'manifest exists but not in an accepted media type', {
      mediaType: descriptor.mediaType,
      accepted: ctx.op.accept,
    })
  }
  const etag = `"${descriptor.digest}"`
  ctx.reply.headers({
    'content-type': descriptor.mediaType,
    'docker-content-digest': descriptor.digest,
    etag,
  })
  if (ctx.request.headers['if-none-match'] === etag) {
    ctx.reply.code(304).send()
    return
  }
  if (head) {
    ctx.reply.header('content-length', String(descriptor.size)).send()
    return
  }
  const manifest = fetched ?? (await repo.manifests.get(descriptor.digest, ctx.op))
  if (!manifest) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { digest: descriptor.digest })
  ctx.reply.send(manifest.bytes)
}

export async function putManifest(ctx: HandlerContext, { name, reference }: ManifestEndpoint): Promise<void> {
  const repo = ctx.repository(name)
  const ref = parseReference(reference)
  const bytes = await readBoundedBody(ctx.request.raw, maxManifestBytes, 'MANIFEST_INVALID')
  const contentType = ctx.request.headers['content-type'] ?? ''
  const result = await repo.manifests.put(bytes, contentType, ref.kind === 'digest' ? { ...ctx.op, digest: ref.digest } : ctx.op)
  if (ref.kind === 'tag') await repo.tags.tag(ref.tag, result.descriptor.digest, ctx.op)
  ctx.reply.code(201).headers({
    location: `${repositoryBase(name)}/manifests/${result.descriptor.digest}`,
    'docker-content-digest': result.descriptor.digest,
    'content-length': '0',
  })
  if (result.subject) ctx.reply.header('oci-subject', result.subject)
  ctx.reply.send()
}

export async function deleteManifest(ctx: HandlerContext, { name, reference }: ManifestEndpoint): Promise<void> {
  if (!ctx.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry')
  const repo = ctx.repository(name)
  const ref = parseReference(reference)
  if (ref.kind === 'tag') await repo.tags.untag(ref.tag, ctx.op)
  else await repo.manifests.delete(ref.digest, ctx.op)
  ctx.reply.code(202).header('content-length', '0').send()
}
