import t from 'tap'
import { parseWwwAuthenticate } from '../../src/client/www-authenticate.js'

t.test('Bearer with quoted values holding commas and colons', async (t) => {
  t.same(
    parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push"'),
    [
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:a/b:pull,push' },
      },
    ],
  )
})

t.test('spacing, case, token values, escapes and error params', async (t) => {
  t.same(parseWwwAuthenticate('BEARER  Realm = "http://x/t" , Service=reg, error="insufficient_scope", scope="a\\"b"'), [
    { scheme: 'bearer', params: { realm: 'http://x/t', service: 'reg', error: 'insufficient_scope', scope: 'a"b' } },
  ])
})

t.test('several challenges in one value and across values', async (t) => {
  t.same(parseWwwAuthenticate(['Basic realm="Registry Realm", Bearer realm="http://x/token",service="s"', 'Negotiate']), [
    { scheme: 'basic', params: { realm: 'Registry Realm' } },
    { scheme: 'bearer', params: { realm: 'http://x/token', service: 's' } },
    { scheme: 'negotiate', params: {} },
  ])
})

t.test('absent or malformed headers', async (t) => {
  t.same(parseWwwAuthenticate(undefined), [])
  t.same(parseWwwAuthenticate(''), [])
  t.same(parseWwwAuthenticate('realm="x"'), [], 'a parameter without a scheme')
  t.same(parseWwwAuthenticate('Bearer realm="unterminated'), [{ scheme: 'bearer', params: { realm: 'unterminated' } }])
})
