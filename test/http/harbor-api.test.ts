// The Harbor-compatible listing API against a real Ferry with pushed images: Harbor's shapes (the
// fields its v2.0 swagger documents, with their types), double URL-encoded nested names, page and
// page_size with X-Total-Count and Link, the same rights as /v2, and the `jq` line sites run
// against Harbor, run with the real jq.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { basic } from '../helpers/htpasswd.js'
import { asEditor, asViewer, editor, teamAuth, viewer } from '../helpers/team-accounts.js'
import { startMirrorServer, type MirrorServer } from '../helpers/mirror-server.js'
import { seedImage, seedIndex, type SeededImage } from '../helpers/seed.js'
import { missingTools } from '../helpers/tools.js'

const { users, roles } = await teamAuth()

// Harbor v2.0 swagger: the fields of Artifact, Tag, Reference and Repository that scripts read, and their JSON types.
const artifactFields = {
  id: 'number',
  type: 'string',
  media_type: 'string',
  manifest_media_type: 'string',
  project_id: 'number',
  repository_id: 'number',
  digest: 'string',
  size: 'number',
  push_time: 'string',
  pull_time: 'string',
  extra_attrs: 'object',
}
const tagFields = {
  id: 'number',
  repository_id: 'number',
  artifact_id: 'number',
  name: 'string',
  push_time: 'string',
  pull_time: 'string',
  immutable: 'boolean',
}
const referenceFields = { parent_id: 'number', child_id: 'number', child_digest: 'string' }
const repositoryFields = {
  id: 'number',
  project_id: 'number',
  name: 'string',
  artifact_count: 'number',
  pull_count: 'number',
  creation_time: 'string',
  update_time: 'string',
}
const dateTime = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

function hasShape(t: Test, value: Record<string, unknown>, fields: Record<string, string>, what: string): void {
  for (const [field, type] of Object.entries(fields)) {
    t.equal(typeof value[field], type, `${what}.${field} is a ${type}`)
    if (field.endsWith('_time')) t.match(value[field], dateTime, `${what}.${field} is a date-time`)
  }
}

interface Site {
  ferry: MirrorServer
  web: SeededImage
  index: { digest: string; children: SeededImage[] }
}

async function site(t: Test): Promise<Site> {
  const ferry = await startMirrorServer({ upstreams: [], defaultUpstream: undefined }, { auth: { users, roles } })
  t.teardown(() => ferry.close())
  const web = await seedImage(ferry.url, 'team-a/apps/web', 'v1', { auth: editor })
  // A second tag on the same manifest: one artifact with two tags.
  const put = await fetch(`${ferry.url}/v2/team-a/apps/web/manifests/latest`, {
    method: 'PUT',
    headers: { authorization: asEditor, 'content-type': web.manifest.mediaType },
    body: web.manifest.bytes,
  })
  t.equal(put.status, 201)
  await seedImage(ferry.url, 'team-a/apps/web', 'v0', { auth: editor })
  const children = [
    await seedImage(ferry.url, 'team-a/multi', 'amd64', { auth: editor }),
    await seedImage(ferry.url, 'team-a/multi', 'arm64', { auth: editor }),
  ]
  const index = await seedIndex(ferry.url, 'team-a/multi', 'v1', children, { auth: editor })
  await seedImage(ferry.url, 'team-b/secret', 'v1', { auth: editor })
  return { ferry, web, index: { digest: index.digest, children } }
}

async function get<T>(url: string, authorization?: string): Promise<{ status: number; headers: Headers; body: T }> {
  const response = await fetch(url, authorization ? { headers: { authorization } } : {})
  return { status: response.status, headers: response.headers, body: (await response.json()) as T }
}

type Json = Record<string, unknown>

t.test('repositories of a project, a page at a time', async (t) => {
  const { ferry } = await site(t)
  const all = await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-a/repositories`, asViewer)
  t.equal(all.status, 200)
  t.same(
    all.body.map((repository) => repository.name),
    ['team-a/apps/web', 'team-a/multi'],
  )
  for (const repository of all.body) hasShape(t, repository, repositoryFields, 'repository')
  t.equal(all.body[0]!.artifact_count, 2, 'web: two artifacts (v1 = latest, and v0)')
  t.equal(all.headers.get('x-total-count'), '2')

  const first = await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-a/repositories?page=1&page_size=1`, asViewer)
  t.same(
    first.body.map((repository) => repository.name),
    ['team-a/apps/web'],
  )
  t.equal(first.headers.get('x-total-count'), '2')
  t.equal(first.headers.get('link'), '</api/v2.0/projects/team-a/repositories?page=2&page_size=1>; rel="next"')
  const second = await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-a/repositories?page=2&page_size=1`, asViewer)
  t.same(
    second.body.map((repository) => repository.name),
    ['team-a/multi'],
  )
  t.equal(second.headers.get('link'), '</api/v2.0/projects/team-a/repositories?page=1&page_size=1>; rel="prev"')
  t.equal((await get(`${ferry.url}/api/v2.0/projects/team-a/repositories?page_size=101`, asViewer)).status, 400, 'page_size above 100')

  t.same((await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-b/repositories`, asViewer)).body, [], 'another team: nothing to see')
  const projects = await get<Json[]>(`${ferry.url}/api/v2.0/projects`, asEditor)
  t.same(
    projects.body.map((project) => [project.name, project.repo_count]),
    [
      ['team-a', 2],
      ['team-b', 1],
    ],
  )
})

t.test('artifacts with tags, nested names double URL-encoded', async (t) => {
  const { ferry, web, index } = await site(t)
  const url = `${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts?with_tag=true`
  const artifacts = await get<Json[]>(url, asViewer)
  t.equal(artifacts.status, 200)
  t.equal(artifacts.body.length, 2)
  for (const artifact of artifacts.body) hasShape(t, artifact, artifactFields, 'artifact')
  const v1 = artifacts.body.find((artifact) => artifact.digest === web.manifest.digest)!
  t.equal(v1.type, 'IMAGE')
  t.equal(v1.manifest_media_type, web.manifest.mediaType)
  t.equal(v1.media_type, web.config.mediaType, 'media_type is the config’s, as Harbor reports it')
  t.equal(
    v1.size,
    web.manifest.size + web.config.size + web.layers.reduce((sum, layer) => sum + layer.size, 0),
    'manifest, config and layers',
  )
  const tags = v1.tags as Json[]
  t.same(tags.map((tag) => tag.name).sort(), ['latest', 'v1'])
  for (const tag of tags) hasShape(t, tag, tagFields, 'tag')
  t.equal(tags[0]!.artifact_id, v1.id, 'a tag names its artifact')
  t.equal(v1.references, null, 'an image has no references')

  const single = await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-a/repositories/apps%2Fweb/artifacts`, asViewer)
  t.equal(single.body.length, 2, 'a single encoding is understood too')
  const noTags = await get<Json[]>(`${url.replace('with_tag=true', 'with_tag=false')}`, asViewer)
  t.equal(noTags.body[0]!.tags, null, 'with_tag=false: no tags')

  const multi = await get<Json[]>(`${ferry.url}/api/v2.0/projects/team-a/repositories/multi/artifacts?with_tag=true`, asViewer)
  const indexArtifact = multi.body.find((artifact) => artifact.digest === index.digest)!
  const references = indexArtifact.references as Json[]
  t.equal(references.length, 2, 'an index lists its children')
  for (const reference of references) hasShape(t, reference, referenceFields, 'reference')
  t.same(
    references.map((reference) => [reference.child_digest, (reference.platform as Json).architecture]),
    [
      [index.children[0]!.manifest.digest, 'amd64'],
      [index.children[1]!.manifest.digest, 'arch1'],
    ],
  )

  const byTag = await get<Json>(`${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts/latest`, asViewer)
  t.equal(byTag.body.digest, web.manifest.digest, 'one artifact by tag')
  const byDigest = await get<Json>(
    `${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts/${web.manifest.digest}`,
    asViewer,
  )
  t.equal(byDigest.body.id, v1.id, 'and by digest, with the same id')
  t.equal((await get(`${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts/nope`, asViewer)).status, 404)
})

t.test('the same rights as the /v2 API', async (t) => {
  const { ferry } = await site(t)
  const path = `${ferry.url}/api/v2.0/projects/team-b/repositories/secret/artifacts`
  const anonymous = await fetch(path)
  t.equal(anonymous.status, 401, 'anonymous: log in')
  t.match(anonymous.headers.get('www-authenticate'), /^Basic /)
  t.equal((await fetch(path, { headers: { authorization: asViewer } })).status, 403, 'an account without pull there: denied')
  t.equal((await fetch(path, { headers: { authorization: basic(viewer.username, 'wrong') } })).status, 401, 'a wrong password')
  t.equal((await fetch(path, { headers: { authorization: asEditor } })).status, 200, 'the editor may')
  t.equal(
    (await fetch(`${ferry.url}/api/v2.0/projects/team-a/repositories/nothing/artifacts`, { headers: { authorization: asViewer } })).status,
    404,
  )
})

t.test('push and pull times, as Harbor records them', async (t) => {
  const before = Date.now()
  const { ferry, web } = await site(t)
  const pushed = Date.now()
  const artifactsUrl = `${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts?with_tag=true`
  const first = (await get<Json[]>(artifactsUrl, asViewer)).body.find((artifact) => artifact.digest === web.manifest.digest)!
  const pushTime = Date.parse(first.push_time as string)
  t.ok(pushTime >= before && pushTime <= pushed, 'push_time is when the manifest was pushed')
  t.equal(first.pull_time, '0001-01-01T00:00:00.000Z', 'never pulled: Harbor’s zero time')
  for (const tag of first.tags as Json[]) t.ok(Date.parse(tag.push_time as string) >= before, `tag ${String(tag.name)} has its push time`)

  const pulling = Date.now()
  const pull = await fetch(`${ferry.url}/v2/team-a/apps/web/manifests/latest`, {
    headers: { authorization: asViewer, accept: web.manifest.mediaType },
  })
  t.equal(pull.status, 200)
  await pull.arrayBuffer()
  const after = (await get<Json[]>(artifactsUrl, asViewer)).body.find((artifact) => artifact.digest === web.manifest.digest)!
  t.ok(Date.parse(after.pull_time as string) >= pulling, 'pull_time moves with a pull')
  const tags = Object.fromEntries((after.tags as Json[]).map((tag) => [tag.name, tag.pull_time]))
  t.ok(Date.parse(tags.latest as string) >= pulling, 'the tag pulled has its pull time')
  t.equal(tags.v1, '0001-01-01T00:00:00.000Z', 'the other tag of the same manifest was not pulled')
})

t.test('the jq line sites run against Harbor', { skip: missingTools('jq').length > 0 ? 'jq is not installed' : undefined }, async (t) => {
  const { ferry } = await site(t)
  const response = await fetch(`${ferry.url}/api/v2.0/projects/team-a/repositories/apps%252Fweb/artifacts?with_tag=true`, {
    headers: { authorization: asViewer },
  })
  const jq = execFile('jq', ['-c', '.[] | select(.tags != null) | .tags[] | {tag: .name, updated: .push_time}'])
  jq.stdin!.end(await response.text())
  let stdout = ''
  jq.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  const [code] = (await once(jq, 'close')) as [number]
  t.equal(code, 0, 'jq parses the answer')
  const lines = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { tag: string; updated: string })
  t.same(lines.map((line) => line.tag).sort(), ['latest', 'v0', 'v1'])
  for (const line of lines) t.match(line.updated, dateTime)
})
