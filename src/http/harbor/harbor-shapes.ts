// The JSON shapes of Harbor's v2.0 API that site scripts read (`curl …/artifacts?with_tag=true |
// jq '.[].tags[].name'`), built from what Ferry stores. Harbor's database ids have no equivalent
// here: ids are stable numbers derived from names and digests, so a script that joins on them
// still works across requests.
import { createHash } from 'node:crypto'
import type { AccessTime } from '../../core/access-times.js'
import type { Descriptor, ParsedManifest } from '../../core/manifest.js'
import { isIndexMediaType } from '../../core/media-types.js'

/** Harbor writes a time never seen as Go's zero time. */
const zeroTime = '0001-01-01T00:00:00.000Z'

export function harborTime(ms: number | undefined): string {
  return ms === undefined ? zeroTime : new Date(ms).toISOString()
}

/** A stable positive id (< 2^48, exact in JSON numbers) for a name or digest. */
export function harborId(...parts: string[]): number {
  return createHash('sha256').update(parts.join('\0')).digest().readUIntBE(0, 6)
}

export interface HarborProject {
  project_id: number
  name: string
  repo_count: number
  creation_time: string
  update_time: string
  metadata: { public: 'true' | 'false' }
}

export interface HarborRepository {
  id: number
  project_id: number
  name: string
  description: string
  artifact_count: number
  pull_count: number
  creation_time: string
  update_time: string
}

export interface HarborTag {
  id: number
  repository_id: number
  artifact_id: number
  name: string
  push_time: string
  pull_time: string
  immutable: boolean
}

export interface HarborReference {
  parent_id: number
  child_id: number
  child_digest: string
  platform?: { architecture?: string; os?: string; 'os.version'?: string; variant?: string }
  annotations?: Record<string, string>
  urls?: string[]
}

export interface HarborArtifact {
  id: number
  type: 'IMAGE' | 'CHART' | 'CNAB' | 'UNKNOWN'
  media_type: string
  manifest_media_type: string
  artifact_type: string
  project_id: number
  repository_id: number
  repository_name: string
  digest: string
  size: number
  push_time: string
  pull_time: string
  annotations: Record<string, string> | null
  extra_attrs: Record<string, unknown>
  references: HarborReference[] | null
  tags: HarborTag[] | null
  labels: null
}

export interface ArtifactFacts {
  project: string
  repository: string
  descriptor: Descriptor
  parsed: ParsedManifest
  /** Bytes of the manifest plus everything it references that is stored here. */
  size: number
  times: AccessTime
  /** Tag names with their times; undefined when the caller asked for no tags. */
  tags: { name: string; times: AccessTime }[] | undefined
}

const imageConfigTypes = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'])

export function harborArtifact(facts: ArtifactFacts): HarborArtifact {
  const { descriptor, parsed } = facts
  const id = harborId(facts.repository, descriptor.digest)
  const repositoryId = harborId(facts.repository)
  const index = isIndexMediaType(parsed.mediaType)
  const config = index ? undefined : parsed.blobs[0]
  const mediaType = config?.mediaType ?? parsed.mediaType
  return {
    id,
    type:
      index || imageConfigTypes.has(mediaType) ? 'IMAGE' : mediaType === 'application/vnd.cncf.helm.config.v1+json' ? 'CHART' : 'UNKNOWN',
    media_type: mediaType,
    manifest_media_type: parsed.mediaType,
    artifact_type: parsed.artifactType ?? mediaType,
    project_id: harborId(facts.project),
    repository_id: repositoryId,
    repository_name: facts.repository,
    digest: descriptor.digest,
    size: facts.size,
    push_time: harborTime(facts.times.pushTime),
    pull_time: harborTime(facts.times.pullTime),
    annotations: parsed.annotations ?? null,
    extra_attrs: {},
    references: index ? parsed.manifests.map((child) => harborReference(id, facts.repository, child)) : null,
    tags:
      facts.tags === undefined || facts.tags.length === 0
        ? null
        : facts.tags.map(({ name, times }) => ({
            id: harborId(facts.repository, 'tag', name),
            repository_id: repositoryId,
            artifact_id: id,
            name,
            push_time: harborTime(times.pushTime),
            pull_time: harborTime(times.pullTime),
            immutable: false,
          })),
    labels: null,
  }
}

function harborReference(parentId: number, repository: string, child: Descriptor): HarborReference {
  const reference: HarborReference = { parent_id: parentId, child_id: harborId(repository, child.digest), child_digest: child.digest }
  const platform = child.platform
  if (platform) {
    const pick = (key: string) => (typeof platform[key] === 'string' ? { [key]: platform[key] as string } : {})
    reference.platform = { ...pick('architecture'), ...pick('os'), ...pick('os.version'), ...pick('variant') }
  }
  if (child.annotations) reference.annotations = child.annotations
  if (child.urls) reference.urls = child.urls
  return reference
}

/** Harbor's `page` (from 1) and `page_size` (default 10, at most 100). */
export interface HarborPage {
  page: number
  size: number
}

export function harborPage(query: { page?: unknown; page_size?: unknown }): HarborPage | undefined {
  const number = (value: unknown, fallback: number) => (value === undefined || value === '' ? fallback : Number(value))
  const page = number(query.page, 1)
  const size = number(query.page_size, 10)
  if (!Number.isInteger(page) || page < 1 || !Number.isInteger(size) || size < 1 || size > 100) return undefined
  return { page, size }
}

/** The items of one page, the `X-Total-Count` and the `Link` header (prev/next, as Harbor writes it). */
export function pageOf<T>(
  items: readonly T[],
  page: HarborPage,
  path: string,
  query: Record<string, string>,
): { items: T[]; headers: Record<string, string> } {
  const start = (page.page - 1) * page.size
  const link = (n: number) => `<${path}?${new URLSearchParams({ ...query, page: String(n), page_size: String(page.size) }).toString()}>`
  const links: string[] = []
  if (page.page > 1 && start - page.size < items.length) links.push(`${link(page.page - 1)}; rel="prev"`)
  if (start + page.size < items.length) links.push(`${link(page.page + 1)}; rel="next"`)
  return {
    items: items.slice(start, start + page.size),
    headers: { 'x-total-count': String(items.length), ...(links.length > 0 ? { link: links.join(' , ') } : {}) },
  }
}
