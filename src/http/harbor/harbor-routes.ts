// A Harbor-compatible listing API (`/api/v2.0/…`) over pushed content, for the scripts sites
// already run against Harbor: projects are the first component of repository names, repositories
// are named `project/rest` as Harbor names them, and nested names in paths are double
// URL-encoded as Harbor wants. Read-only; the same credentials and rights as the /v2 API (pull on
// the repository), with Basic login as Harbor's API takes it.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { AccessTime, AccessTimeReader } from '../../core/access-times.js'
import type { Authenticator, Authorizer, Principal } from '../../core/auth.js'
import { tryParseDigest, type Digest } from '../../core/digest.js'
import { RegistryError } from '../../core/errors.js'
import { parseManifest, type Descriptor, type ParsedManifest } from '../../core/manifest.js'
import { isRepositoryName, isTag, type RepositoryName } from '../../core/reference.js'
import type { Op, Registry, Repository } from '../../core/registry.js'
import { harborArtifact, harborId, harborPage, harborTime, pageOf, type HarborPage } from './harbor-shapes.js'

export interface HarborRoutesDeps {
  registry: Registry
  authenticator: Authenticator
  authorizer: Authorizer
  /** Push and pull times; without a recorder every time is Harbor's zero time. */
  times?: AccessTimeReader
}

/** How the listing reads repositories: as a listing, so reading an artifact is not recorded as its pull. */
const listing: Op = { listing: true }

const unknownTimes: AccessTimeReader = { manifest: async () => ({}), tag: async () => ({}) }

export async function harborRoutes(app: FastifyInstance, deps: HarborRoutesDeps): Promise<void> {
  const times = deps.times ?? unknownTimes
  const principalOf = async (request: FastifyRequest): Promise<Principal> => {
    const result = await deps.authenticator.authenticate({ authorization: request.headers.authorization, remote: request.ip })
    if (result.outcome === 'ok') return result.principal
    if (result.outcome === 'rate-limited') {
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins from this address', undefined, {
        headers: { 'retry-after': String(result.retryAfterSeconds) },
      })
    }
    throw unauthorized()
  }
  const mayPull = (principal: Principal, name: string) =>
    deps.authorizer.authorize(principal, { type: 'repository', name, action: 'pull' }) === 'allow'

  /** Pushed repositories under `project/` the principal may pull, in lexical order. */
  const repositoriesOf = async (principal: Principal, project: string): Promise<string[]> => {
    const names: string[] = []
    let last = `${project}/`
    for (;;) {
      const result = await deps.registry.catalog({ n: 1000, last })
      const inProject = result.items.filter((name) => name.startsWith(`${project}/`))
      names.push(...inProject.filter((name) => mayPull(principal, name)))
      if (result.next === undefined || inProject.length < result.items.length) return names
      last = result.items.at(-1)!
    }
  }

  /** The pushed repository, once the principal may pull it (else 401 anonymous, 403 an account, as on /v2). */
  const pushedRepository = async (principal: Principal, project: string, encoded: string): Promise<Repository> => {
    const name = `${project}/${decodeRepositoryName(encoded)}`
    if (!isRepositoryName(name)) throw new RegistryError('NAME_INVALID', undefined, { name })
    if (!mayPull(principal, name)) {
      if (principal.anonymous) throw unauthorized()
      throw new RegistryError('DENIED', undefined, { name, action: 'pull' })
    }
    const repository = deps.registry.repository(name)
    // Only what was pushed here: a mirrored name would send the listing upstream.
    const pushed = repository.mirror ? await repository.mirror.pushed() : (await repository.tags.list({ n: 0 })) !== undefined
    if (!pushed) throw new RegistryError('NAME_UNKNOWN', undefined, { name })
    return repository
  }

  app.get('/api/v2.0/projects', async (request, reply) => {
    const principal = await principalOf(request)
    const page = pageQuery(request)
    const projects = new Map<string, number>()
    let last: string | undefined
    for (;;) {
      const result = await deps.registry.catalog({ n: 1000, ...(last === undefined ? {} : { last }) })
      for (const name of result.items) {
        const slash = name.indexOf('/')
        if (slash > 0 && mayPull(principal, name)) projects.set(name.slice(0, slash), (projects.get(name.slice(0, slash)) ?? 0) + 1)
      }
      if (result.next === undefined) break
      last = result.items.at(-1)
    }
    const nameFilter = (request.query as { name?: unknown }).name
    const listed = [...projects].filter(([name]) => typeof nameFilter !== 'string' || name.includes(nameFilter))
    const { items, headers } = pageOf(listed, page, '/api/v2.0/projects', typeof nameFilter === 'string' ? { name: nameFilter } : {})
    return reply.headers(headers).send(
      items.map(([name, count]) => ({
        project_id: harborId(name),
        name,
        repo_count: count,
        creation_time: harborTime(undefined),
        update_time: harborTime(undefined),
        metadata: { public: 'false' },
      })),
    )
  })

  app.get<{ Params: { project: string } }>('/api/v2.0/projects/:project/repositories', async (request, reply) => {
    const principal = await principalOf(request)
    const page = pageQuery(request)
    const project = request.params.project
    const { items, headers } = pageOf(
      await repositoriesOf(principal, project),
      page,
      `/api/v2.0/projects/${encodeURIComponent(project)}/repositories`,
      {},
    )
    const repositories = await Promise.all(
      items.map(async (name) => {
        const artifacts = await artifactDigests(deps.registry.repository(name as RepositoryName), name, times)
        const pushTimes = artifacts.map((artifact) => artifact.times.pushTime).filter((time) => time !== undefined)
        return {
          id: harborId(name),
          project_id: harborId(project),
          name,
          description: '',
          artifact_count: artifacts.length,
          pull_count: 0,
          creation_time: harborTime(pushTimes.length > 0 ? Math.min(...pushTimes) : undefined),
          update_time: harborTime(pushTimes.length > 0 ? Math.max(...pushTimes) : undefined),
        }
      }),
    )
    return reply.headers(headers).send(repositories)
  })

  app.get<{ Params: { project: string; repository: string } }>(
    '/api/v2.0/projects/:project/repositories/:repository/artifacts',
    async (request, reply) => {
      const principal = await principalOf(request)
      const page = pageQuery(request)
      const { project, repository: encoded } = request.params
      const repository = await pushedRepository(principal, project, encoded)
      const withTag = (request.query as { with_tag?: unknown }).with_tag !== 'false'
      // Harbor's default order: the most recently pushed first.
      const all = (await artifactDigests(repository, repository.name, times)).sort(
        (a, b) => (b.times.pushTime ?? 0) - (a.times.pushTime ?? 0) || a.digest.localeCompare(b.digest),
      )
      const path = `/api/v2.0/projects/${encodeURIComponent(project)}/repositories/${encodeURIComponent(encodeURIComponent(decodeRepositoryName(encoded)))}/artifacts`
      const { items, headers } = pageOf(all, page, path, withTag ? {} : { with_tag: 'false' })
      const artifacts = await Promise.all(items.map((item) => describe(repository, project, item, withTag, times)))
      return reply.headers(headers).send(artifacts.filter((artifact) => artifact !== undefined))
    },
  )

  app.get<{ Params: { project: string; repository: string; reference: string } }>(
    '/api/v2.0/projects/:project/repositories/:repository/artifacts/:reference',
    async (request, reply) => {
      const principal = await principalOf(request)
      const { project, repository: encoded, reference } = request.params
      const repository = await pushedRepository(principal, project, encoded)
      const digest =
        tryParseDigest(reference) ?? (isTag(reference) ? (await repository.tags.resolve(reference, listing))?.digest : undefined)
      const found = digest ? (await artifactDigests(repository, repository.name, times)).find((item) => item.digest === digest) : undefined
      const artifact = found
        ? await describe(repository, project, found, (request.query as { with_tag?: unknown }).with_tag !== 'false', times)
        : digest
          ? await describe(repository, project, { digest, tags: [], times: await times.manifest(repository.name, digest) }, false, times)
          : undefined
      if (!artifact) throw new RegistryError('MANIFEST_UNKNOWN', undefined, { name: repository.name, reference })
      return reply.send(artifact)
    },
  )
}

interface ArtifactEntry {
  digest: Digest
  tags: string[]
  times: AccessTime
}

/** Tagged manifests of a repository, each with its tags (Harbor's artifacts; untagged ones are not listed). */
async function artifactDigests(repository: Repository, name: string, times: AccessTimeReader): Promise<ArtifactEntry[]> {
  const byDigest = new Map<Digest, string[]>()
  let last: string | undefined
  for (;;) {
    const result = await repository.tags.list({ n: 1000, ...(last === undefined ? {} : { last }) }, listing)
    if (!result) return []
    const resolved = await Promise.all(result.items.map(async (tag) => [tag, await repository.tags.resolve(tag, listing)] as const))
    for (const [tag, descriptor] of resolved) {
      if (descriptor) byDigest.set(descriptor.digest, [...(byDigest.get(descriptor.digest) ?? []), tag])
    }
    if (result.next === undefined) break
    last = result.items.at(-1)
  }
  return Promise.all([...byDigest].map(async ([digest, tags]) => ({ digest, tags, times: await times.manifest(name, digest) })))
}

async function describe(repository: Repository, project: string, entry: ArtifactEntry, withTag: boolean, times: AccessTimeReader) {
  const stored = await repository.manifests.get(entry.digest, listing)
  if (!stored) return undefined
  const parsed = parseManifest(stored.bytes, stored.descriptor.mediaType)
  const tags = withTag
    ? await Promise.all(entry.tags.map(async (name) => ({ name, times: await times.tag(repository.name, name) })))
    : undefined
  return harborArtifact({
    project,
    repository: repository.name,
    descriptor: stored.descriptor,
    parsed,
    size: stored.bytes.length + (await referencedBytes(repository, parsed)),
    times: entry.times,
    tags,
  })
}

/** What a manifest references that is stored here: its blobs, or for an index its children with theirs. */
async function referencedBytes(repository: Repository, parsed: ParsedManifest): Promise<number> {
  const blobs = parsed.blobs.reduce((sum, blob: Descriptor) => sum + blob.size, 0)
  const children = await Promise.all(
    parsed.manifests.map(async (child) => {
      const stored = await repository.manifests.get(child.digest, listing)
      if (!stored) return 0
      return stored.bytes.length + parseManifest(stored.bytes, stored.descriptor.mediaType).blobs.reduce((sum, blob) => sum + blob.size, 0)
    }),
  )
  return blobs + children.reduce((sum, size) => sum + size, 0)
}

/** Harbor wants `a/b` inside a repository path segment written `a%252Fb`; a single encoding is accepted too. */
function decodeRepositoryName(param: string): string {
  try {
    return decodeURIComponent(param)
  } catch {
    throw new RegistryError('NAME_INVALID', 'malformed percent-encoding in the repository name')
  }
}

function pageQuery(request: FastifyRequest): HarborPage {
  const page = harborPage(request.query as { page?: unknown; page_size?: unknown })
  if (!page) throw new RegistryError('PAGINATION_NUMBER_INVALID', 'page must be ≥ 1 and page_size between 1 and 100')
  return page
}

function unauthorized(): RegistryError {
  return new RegistryError('UNAUTHORIZED', undefined, undefined, {
    headers: { 'www-authenticate': 'Basic realm="Ferry", charset="UTF-8"' },
  })
}
