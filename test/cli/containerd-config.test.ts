// `ferry containerd-config` as a command: files written, equivalents printed, bad flags refused
// with exit status 2, and Ferry's config consulted when given.
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from './fixtures/fake-io.js'

const argv = (...args: string[]) => ['node', 'ferry', 'containerd-config', ...args]

t.test('writes a hosts.toml per registry and prints the CRI, Anthos and OpenShift equivalents', async (t) => {
  const dir = t.testdir()
  const fake = fakeIo()
  await runCli(argv('--endpoint', 'http://10.0.0.5:5000', '--output', dir), fake.io)
  t.same(fake.exits, [])
  t.same((await readdir(join(dir, 'certs.d'))).sort(), ['docker.io', 'gcr.io', 'registry.k8s.io'], 'the default registries')
  t.match(await readFile(join(dir, 'certs.d', 'gcr.io', 'hosts.toml'), 'utf8'), /^\[host\."http:\/\/10\.0\.0\.5:5000"\]$/m)
  t.match(fake.stdout(), /registry\.mirrors\."registry\.k8s\.io"/)
  t.match(fake.stdout(), /^registryMirrors:$/m)
  t.match(fake.stdout(), /^kind: ImageDigestMirrorSet$/m)
  t.match(fake.stderr(), /wrote .*certs\.d\/gcr\.io\/hosts\.toml/)
})

t.test('bad flags and a CA file that holds no certificate exit with status 2', async (t) => {
  const dir = t.testdir({ 'key.pem': '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n' })
  const cases: Array<[string[], RegExp]> = [
    [['--endpoint', 'ferry:5000'], /--endpoint "ferry:5000"/],
    [['--endpoint', 'https://ferry:5000', '--ca', join(dir, 'key.pem')], /--ca .*key\.pem: no PEM certificate .*private key/],
    [['--endpoint', 'https://ferry:5000', '--ca', join(dir, 'missing.crt')], /--ca .*missing\.crt: no such file/],
    [['--endpoint', 'https://ferry:5000', '--registries', 'gcr.io,../x'], /"\.\.\/x" is not a registry host/],
    [
      ['--endpoint', 'https://ferry:5000', '--output', join(dir, 'key.pem')],
      /--output: cannot write .*key\.pem\/certs\.d\/gcr\.io\/hosts\.toml \(ENOTDIR\)/,
    ],
  ]
  for (const [flags, message] of cases) {
    const fake = fakeIo()
    await runCli(argv('--output', dir, ...flags), fake.io)
    t.same(fake.exits, [2], flags.join(' '))
    t.match(fake.stderr(), message)
  }
  t.same((await readdir(dir)).sort(), ['key.pem'], 'nothing written')
})

t.test("with Ferry's config: its upstreams are the default registries; unknown ones and namespaces are warned about", async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'ferry.yaml')
  await writeFile(
    file,
    [
      'mirror:',
      '  upstreams:',
      '    - { name: gcr.io, url: "https://gcr.io" }',
      '    - { name: hub, url: "https://registry-1.docker.io", aliases: [docker.io] }',
      '',
    ].join('\n'),
  )
  const fake = fakeIo()
  await runCli(argv('--endpoint', 'https://ferry:5000', '--config', file, '--output', dir), fake.io)
  t.same((await readdir(join(dir, 'certs.d'))).sort(), ['docker.io', 'gcr.io'], 'hub is named by its alias, the host in image references')
  t.notMatch(fake.stderr(), /warning/)

  const checked = fakeIo()
  await runCli(
    argv(
      '--endpoint',
      'https://ferry:5000',
      '--config',
      file,
      '--registries',
      'docker.io,quay.io',
      '--namespace',
      'team-a',
      '--output',
      dir,
    ),
    checked.io,
  )
  t.match(checked.stderr(), /no upstream in Ferry's config answers \?ns=quay\.io/)
  t.notMatch(checked.stderr(), /\?ns=docker\.io/, 'docker.io is an alias of hub')
  t.match(checked.stderr(), /no mirror\.namespaces entry "team-a"/)
  t.match(checked.stdout(), /- ferry:5000\/hub$/m, 'OpenShift reaches docker.io through the hub prefix')
})
