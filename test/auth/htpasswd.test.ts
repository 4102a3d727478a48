// htpasswd parsing against entries written by the real `htpasswd` tool (apache2-utils), and the
// pure pieces of auth: namespace patterns and token scopes.
import bcrypt from 'bcryptjs'
import t from 'tap'
import { HtpasswdError, parseHtpasswd } from '../../src/auth/htpasswd.js'
import { compileNamespacePattern } from '../../src/auth/namespace-pattern.js'
import { parseScope, repositoryActions } from '../../src/auth/scope.js'
import { htpasswdMissing } from '../helpers/htpasswd.js'
import { run } from '../helpers/tools.js'

t.test(
  'bcrypt entries written by htpasswd -B',
  { skip: htpasswdMissing ? 'htpasswd not on PATH (apt-get install apache2-utils)' : false },
  async (t) => {
    const alice = (await run('htpasswd', ['-nbB', 'alice', 'correct horse'])).stdout.trim()
    const bob = (await run('htpasswd', ['-nbB', '-C', '10', 'bob', 'p:a:s:s'])).stdout.trim()
    t.match(alice, /^alice:\$2y\$05\$/, 'htpasswd -B writes $2y$ at cost 5')
    const entries = parseHtpasswd(`# team accounts\n${alice}\n\n  ${bob}  \r\n`)
    t.same(
      entries.map((e) => e.name),
      ['alice', 'bob'],
      'comments, blank lines, spaces and CRLF are fine',
    )
    t.ok(await bcrypt.compare('correct horse', entries[0]!.hash), 'bcryptjs verifies the $2y$ hash')
    t.ok(await bcrypt.compare('p:a:s:s', entries[1]!.hash), 'a password with colons, cost 10')
    t.notOk(await bcrypt.compare('wrong', entries[0]!.hash))
    // $2a$ and $2b$ are the same algorithm under other names (older htpasswd, Python's bcrypt).
    const b = entries[0]!.hash.replace(/^\$2y\$/, '$2b$')
    t.same(parseHtpasswd(`alice:${b}`), [{ name: 'alice', hash: b }])
  },
)

t.test(
  'weak or malformed entries refuse the whole file, naming the line and never the hash',
  { skip: htpasswdMissing ? 'htpasswd not on PATH' : false },
  async (t) => {
    const md5 = (await run('htpasswd', ['-nbm', 'carol', 'secret-md5'])).stdout.trim()
    const sha = (await run('htpasswd', ['-nbs', 'dave', 'secret-sha'])).stdout.trim()
    const good = (await run('htpasswd', ['-nbB', 'alice', 'pw'])).stdout.trim()
    for (const [text, line, message] of [
      [`${good}\n${md5}`, 2, 'line 2: user "carol" does not have a bcrypt hash; only bcrypt is supported (htpasswd -B)'],
      [`${sha}`, 1, 'line 1: user "dave" does not have a bcrypt hash; only bcrypt is supported (htpasswd -B)'],
      [`${good}\neve:plaintext-password`, 2, 'line 2: user "eve" does not have a bcrypt hash; only bcrypt is supported (htpasswd -B)'],
      [`${good}\njust-a-name`, 2, 'line 2: expected "name:hash"'],
      [`${good}\n${good}`, 2, 'line 2: user "alice" appears twice'],
    ] as const) {
      t.throws(() => parseHtpasswd(text), new HtpasswdError(message, line), message)
      try {
        parseHtpasswd(text)
      } catch (err) {
        t.notMatch((err as Error).message, /\$2y\$|\$apr1\$|\{SHA\}|plaintext-password/, 'no hash or password in the message')
      }
    }
  },
)

t.test('namespace patterns', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['**', 'a', true],
    ['**', 'a/b/c', true],
    ['team-a/**', 'team-a', true],
    ['team-a/**', 'team-a/x/y', true],
    ['team-a/**', 'team-ab', false],
    ['team-a/**', 'team-ab/x', false],
    ['team-a/*', 'team-a/x', true],
    ['team-a/*', 'team-a/x/y', false],
    ['team-a/*', 'team-a', false],
    ['**/app', 'app', true],
    ['**/app', 'x/y/app', true],
    ['**/app', 'xapp', false],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'ab', false],
    ['team-*', 'team-x', true],
    ['team-*', 'team-x/y', false],
    ['a.b', 'axb', false],
    ['a/**/**', 'a', true],
  ]
  for (const [pattern, name, expected] of cases)
    t.equal(compileNamespacePattern(pattern)(name), expected, `${pattern} ${expected ? 'matches' : 'does not match'} ${name}`)
})

t.test('token scopes', async (t) => {
  t.same(parseScope('repository:team/app:pull,push'), { type: 'repository', name: 'team/app', actions: ['pull', 'push'] })
  t.same(parseScope('repository(plugin):app:pull'), { type: 'repository', name: 'app', actions: ['pull'] })
  t.same(
    parseScope('repository:localhost:5000/app:pull'),
    { type: 'repository', name: 'localhost:5000/app', actions: ['pull'] },
    'the name may hold a colon',
  )
  t.same(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] })
  t.equal(parseScope('repository:app'), undefined)
  t.equal(parseScope('group:app:pull'), undefined, 'unknown resource types are skipped')
  t.same(repositoryActions(['*']), ['pull', 'push', 'delete'])
  t.same(repositoryActions(['push', 'bogus', 'pull']), ['pull', 'push'])
})
