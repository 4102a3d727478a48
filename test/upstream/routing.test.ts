import t from 'tap'
import type { RepositoryName } from '../../src/core/reference.js'
import { resolveRoute, routeTable } from '../../src/upstream/routing.js'

const table = routeTable({
  upstreams: [
    { name: 'gcr.io', url: 'https://gcr.io', aliases: [] },
    { name: 'docker.io', url: 'https://registry-1.docker.io', aliases: [] },
    { name: 'registry.k8s.io', url: 'https://registry.k8s.io', aliases: [] },
    { name: 'localhost-5001', url: 'http://127.0.0.1:5001', aliases: ['host:5000'] },
  ],
  defaultUpstream: 'gcr.io',
  namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
})
const name = (value: string) => value as RepositoryName

t.test('unprefixed names fall back to the default upstream', async (t) => {
  t.same(resolveRoute(table, name('kubernetes-e2e-test-images/nautilus')), {
    localName: 'kubernetes-e2e-test-images/nautilus',
    upstream: {
      name: 'gcr.io',
      repository: 'kubernetes-e2e-test-images/nautilus',
      cacheName: 'gcr.io/kubernetes-e2e-test-images/nautilus',
    },
  })
})

t.test('?ns= selects the upstream by name, URL host or alias', async (t) => {
  t.same(resolveRoute(table, name('library/nginx'), 'docker.io'), {
    localName: 'docker.io/library/nginx',
    upstream: { name: 'docker.io', repository: 'library/nginx', cacheName: 'docker.io/library/nginx' },
  })
  t.equal(
    resolveRoute(table, name('nginx'), 'registry-1.docker.io').upstream?.repository,
    'library/nginx',
    'Docker Hub library/ normalisation',
  )
  t.equal(resolveRoute(table, name('pause'), 'registry.k8s.io').upstream?.repository, 'pause', 'no library/ elsewhere')
  t.equal(resolveRoute(table, name('x/y'), '127.0.0.1:5001').upstream?.name, 'localhost-5001')
  t.equal(resolveRoute(table, name('x/y'), 'HOST:5000').upstream?.name, 'localhost-5001')
  t.equal(resolveRoute(table, name('x/y'), 'gcr.io').localName, 'x/y', 'the default upstream keeps unprefixed local names')
})

t.test('an unknown ns is refused, never dialled', async (t) => {
  t.throws(() => resolveRoute(table, name('x/y'), 'evil.example.com'), { code: 'NAME_UNKNOWN', status: 404 })
  t.throws(() => resolveRoute(table, name('x/y'), 'gcr.io.evil.com'), { code: 'NAME_UNKNOWN' })
  t.throws(
    () => resolveRoute(table, name('x/y'), '\r\ngcr.io'),
    { code: 'NAME_UNKNOWN' },
    'control characters name nothing, even at the ends',
  )
})

t.test('path prefixes select an upstream for clients that cannot send ns', async (t) => {
  t.same(resolveRoute(table, name('docker.io/library/nginx')), {
    localName: 'docker.io/library/nginx',
    upstream: { name: 'docker.io', repository: 'library/nginx', cacheName: 'docker.io/library/nginx' },
  })
  t.equal(resolveRoute(table, name('docker.io/nginx')).upstream?.repository, 'library/nginx')
})

t.test('namespaced mirror paths accept both containerd path shapes', async (t) => {
  const expected = {
    localName: 'test-namespace/pause',
    upstream: { name: 'gcr.io', repository: 'pause', cacheName: 'gcr.io/pause' },
  }
  t.same(resolveRoute(table, name('test-namespace/pause')), expected)
  t.same(resolveRoute(table, name('test-namespace/v2/pause'), 'gcr.io'), expected)
  t.equal(resolveRoute(table, name('test-namespace/a/b'), 'docker.io').upstream?.cacheName, 'docker.io/a/b', 'a known ns wins')
})

t.test('without a default upstream, unprefixed names are local only', async (t) => {
  const local = routeTable({
    upstreams: [{ name: 'gcr.io', url: 'https://gcr.io', aliases: [] }],
    defaultUpstream: undefined,
    namespaces: [],
  })
  t.same(resolveRoute(local, name('team/app')), { localName: 'team/app' })
})
