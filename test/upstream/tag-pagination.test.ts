// tags/list pagination: distribution 2.8 does not paginate tags, so the paginating upstream here
// is a second Ferry (RFC 8288 Link headers with n/last), plus a stub for hostile Link headers.
import t from 'tap'
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js'
import { sendJson, startStub } from '../helpers/http-stub.js'
import { pushManifest, seedImage } from '../helpers/seed.js'
import { startTestServer } from '../helpers/server.js'

t.test('follows Link pagination across pages from a second Ferry', async (t) => {
  const ferry = await startTestServer()
  t.teardown(() => ferry.close())
  const tags = Array.from({ length: 23 }, (_, i) => `v${String(i).padStart(2, '0')}`)
  const image = await seedImage(ferry.url, 'team/app', tags[0]!)
  for (const tag of tags.slice(1)) await pushManifest(ferry.url, 'team/app', tag, image.manifest.bytes, image.manifest.mediaType)

  const paged = new RegistryUpstream({ name: 'ferry', url: ferry.url, tagPageSize: 5 })
  t.teardown(() => paged.close())
  t.same(await paged.listTags('team/app'), tags, 'five pages joined in order')

  const capped = new RegistryUpstream({ name: 'ferry', url: ferry.url, tagPageSize: 5, maxTagPages: 2 })
  t.teardown(() => capped.close())
  t.same(await capped.listTags('team/app'), tags.slice(0, 10), 'the page cap cuts the list short')
})

t.test('a Link to another origin or back to a visited page ends the list', async (t) => {
  const stub = await startStub((request, response) => {
    const page = new URL(request.url, 'http://x').searchParams.get('page') ?? '0'
    const links: Record<string, string> = {
      '0': '</v2/foo/tags/list?page=1>; rel="next"',
      '1': '<http://127.0.0.1:1/v2/foo/tags/list?page=2>; rel="next"',
    }
    const body = { name: request.url.startsWith('/v2/loop') ? 'loop' : 'foo', tags: [`t${page}`] }
    const link = request.url.startsWith('/v2/loop') ? '</v2/loop/tags/list>; rel="next"' : links[page]
    sendJson(response, 200, body, link ? { link } : {})
  })
  t.teardown(() => stub.close())
  const upstream = new RegistryUpstream({ name: 'stub', url: stub.url })
  t.teardown(() => upstream.close())
  t.same(await upstream.listTags('foo'), ['t0', 't1'])
  t.same(await upstream.listTags('loop'), ['t0'])
  t.equal(stub.requests.filter((r) => r.url.startsWith('/v2/loop')).length, 1, 'the self-link is not fetched again')
})
