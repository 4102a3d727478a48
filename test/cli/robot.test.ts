import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { parseHtpasswd } from '../../src/auth/htpasswd.js'
import { fakeIo } from './fixtures/fake-io.js'
import bcrypt from 'bcryptjs'

const argv = (...args: string[]) => ['node', 'ferry', ...args]

t.test('robot create writes a bcrypt entry and prints a 256-bit secret once', async (t) => {
  const file = join(
    t.testdir({ 'users.htpasswd': 'alice:$2y$05$abcdefghijklmnopqrstuuQ1QeWk1v8b6Gm7gSgW5m9m9S0dQ3Yhy\nrobot-ci:$2y$05$old\n' }),
    'users.htpasswd',
  )
  const fake = fakeIo()
  await runCli(argv('robot', 'create', 'robot-ci', '--htpasswd', file), fake.io)
  const secret = fake.stdout().trim()
  t.match(secret, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  const entries = parseHtpasswd(await readFile(file, 'utf8'))
  t.same(
    entries.map((e) => e.name),
    ['alice', 'robot-ci'],
    'the old robot line is replaced, others kept',
  )
  const robot = entries.find((e) => e.name === 'robot-ci')!
  t.ok(await bcrypt.compare(secret, robot.hash), 'the secret matches the stored hash')
  t.notMatch(fake.stderr(), secret, 'the secret is not repeated on stderr')
})

t.test('without --htpasswd the line goes to stdout and the secret to stderr', async (t) => {
  const fake = fakeIo()
  await runCli(argv('robot', 'create', 'node-puller'), fake.io)
  t.match(fake.stdout(), /^node-puller:\$2[aby]\$12\$.{53}\n$/)
  t.match(fake.stderr(), /secret for node-puller \(shown once\): [A-Za-z0-9_-]{43}\n/)
})

t.test('invalid names are refused', async (t) => {
  const fake = fakeIo()
  await runCli(argv('robot', 'create', 'Bad Name'), fake.io)
  t.same(fake.exits, [2])
  t.match(fake.stderr(), /invalid robot name/)
})
