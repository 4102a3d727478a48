import t from 'tap'
import { isRepositoryName, isTag, parseReference, parseRepositoryName } from '../../src/core/reference.js'

t.test('repository names follow the spec grammar', async (t) => {
  for (const name of ['a', 'library/nginx', 'a/b/c/d/e', 'my-repo', 'my__repo', 'my.repo', 'a--b', 'x/blobs/manifests/tags/uploads', '0']) {
    t.ok(isRepositoryName(name), name)
  }
  for (const name of [
    '',
    'A',
    'a/',
    '/a',
    'a//b',
    '..',
    'a/../b',
    './a',
    'a/.b',
    '_a',
    'a_',
    'a___b',
    'a/-b',
    'a b',
    'a%2fb',
    'x'.repeat(256),
  ]) {
    t.notOk(isRepositoryName(name), JSON.stringify(name))
  }
  t.throws(() => parseRepositoryName('../etc'), { name: 'RegistryError', code: 'NAME_INVALID' })
})

t.test('tags follow the spec grammar', async (t) => {
  for (const tag of ['latest', 'v1.0.0', '_x', 'A-b_c.d', 'x'.repeat(128)]) t.ok(isTag(tag), tag)
  for (const tag of ['', '.x', '-x', 'x'.repeat(129), 'a/b', 'a:b', '..', '.INVALID_MANIFEST_NAME']) t.notOk(isTag(tag), tag)
})

t.test('references are tags or digests', async (t) => {
  t.same(parseReference('v1'), { kind: 'tag', tag: 'v1' })
  const digest = `sha256:${'0'.repeat(64)}`
  t.same(parseReference(digest), { kind: 'digest', digest })
  t.throws(() => parseReference('sha256:nope'), { name: 'RegistryError', code: 'DIGEST_INVALID' })
  t.throws(() => parseReference('.bad'), { name: 'RegistryError', code: 'TAG_INVALID' })
})
