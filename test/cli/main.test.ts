import { readFile } from 'node:fs/promises'
import t from 'tap'
import { buildProgram, runCli } from '../../src/cli/main.js'
import { fakeIo } from './fixtures/fake-io.js'

const argv = (...args: string[]) => ['node', 'ferry', ...args]

t.test('--version prints the package version', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  for (const flag of ['--version', '-V']) {
    const fake = fakeIo()
    await runCli(argv(flag), fake.io)
    t.equal(fake.stdout(), `${pkg.version}\n`, flag)
    t.same(fake.exits, [])
  }
})

t.test('--help works on every command', async (t) => {
  for (const args of [[], ['serve'], ['config'], ['config', 'check'], ['config', 'print'], ['push', 'images']]) {
    const fake = fakeIo()
    await runCli(argv(...args, '--help'), fake.io)
    t.match(fake.stdout(), /^Usage: ferry/, `${args.join(' ')} --help`)
    t.same(fake.exits, [])
  }
})

t.test('an unknown command is a usage error with a suggestion', async (t) => {
  const fake = fakeIo()
  await runCli(argv('confg', 'check', 'x.yaml'), fake.io)
  t.match(fake.stderr(), "unknown command 'confg' (did you mean 'config'?)")
  t.same(fake.exits, [1])
})

t.test('buildProgram lists the commands', async (t) => {
  const names = (await buildProgram(fakeIo().io)).commands.map((c) => c.name())
  t.same(names.sort(), [
    'bundle',
    'config',
    'containerd-config',
    'extract',
    'gc',
    'healthcheck',
    'pull',
    'push',
    'robot',
    'scrub',
    'serve',
    'storage',
  ])
})

t.test('a command named first loads only its own module; anything else loads them all', async (t) => {
  const names = async (args: string[]): Promise<string[]> => (await buildProgram(fakeIo().io, {}, args)).commands.map((c) => c.name())
  t.same(await names(['healthcheck', '--url', 'http://x']), ['healthcheck'])
  t.same(await names(['push', 'images', '--source', 'b.tar']), ['push'])
  t.same(await names(['storage', 'du']), ['gc', 'scrub', 'storage'])
  t.equal((await names(['--help'])).length, 12)
  t.equal((await names(['--listen', '127.0.0.1:5000'])).length, 12, "serve's flags alone: serve is the default command")
  t.equal((await names(['confg'])).length, 12, 'a typo: every name, for the suggestion')
  t.same(await names(['--version']), [])
})
