// `ferry config check` opens every file the config names with the code start-up uses: upstream
// CA bundles and client certificates, credential files, htpasswd and the token key. A problem is
// one line naming the key and the file, and exit status 2.
import { generateKeyPairSync } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from './fixtures/fake-io.js'
import { issueClientCert, makeCa, pkiUnavailable } from '../helpers/pki.js'

const why = pkiUnavailable()

async function check(dir: string, yaml: string[]) {
  const file = join(dir, 'ferry.yaml')
  await writeFile(file, `${yaml.join('\n')}\n`)
  const fake = fakeIo()
  await runCli(['node', 'ferry', 'config', 'check', file], fake.io)
  return { file, stdout: fake.stdout(), stderr: fake.stderr(), exits: fake.exits }
}

function upstream(lines: string[], mirror: string[] = []): string[] {
  return [
    'mirror:',
    ...mirror.map((l) => `  ${l}`),
    '  upstreams:',
    '    - name: gcr.io',
    '      url: https://gcr.io',
    ...lines.map((l) => `      ${l}`),
  ]
}

function serviceAccountKey(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return JSON.stringify({
    type: 'service_account',
    client_email: 'ferry@example.iam.gserviceaccount.com',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
  })
}

t.test('credential files: a missing or invalid key JSON or config.json names its key', async (t) => {
  const dir = t.testdir({ 'garbage.json': '{ not json', 'config.json': '{"auths":{}}' })
  await writeFile(join(dir, 'key.json'), serviceAccountKey())

  const good = await check(
    dir,
    upstream([`gcrKeyPath: ${join(dir, 'key.json')}`], [`pullCredentialConfigPath: ${join(dir, 'config.json')}`]),
  )
  t.equal(good.stderr, '')
  t.equal(good.stdout, `config ok: ${good.file}\n`)

  const garbage = await check(dir, upstream([`gcrKeyPath: ${join(dir, 'garbage.json')}`]))
  t.equal(garbage.stderr, `ferry: mirror.upstreams.0.gcrKeyPath (${join(dir, 'garbage.json')}) of upstream gcr.io: is not valid JSON\n`)
  t.same(garbage.exits, [2])
  t.equal(garbage.stdout, '')

  const missing = await check(dir, upstream([`pullCredentialConfigPath: ${join(dir, 'nope.json')}`]))
  t.equal(
    missing.stderr,
    `ferry: mirror.upstreams.0.pullCredentialConfigPath (${join(dir, 'nope.json')}) of upstream gcr.io: cannot be read (ENOENT)\n`,
  )
  t.same(missing.exits, [2])

  // One line for a mirror-wide file, however many upstreams use it.
  const shared = await check(dir, [
    'mirror:',
    `  pullCredentialConfigPath: ${join(dir, 'garbage.json')}`,
    '  upstreams:',
    '    - { name: gcr.io, url: "https://gcr.io" }',
    '    - { name: quay.io, url: "https://quay.io" }',
  ])
  t.equal(shared.stderr, `ferry: mirror.pullCredentialConfigPath (${join(dir, 'garbage.json')}): is not valid JSON\n`)
  t.same(shared.exits, [2])
})

t.test('htpasswd and the token key', async (t) => {
  const dir = t.testdir({ 'users.htpasswd': 'alice:plaintext\n', 'token.pem': 'not a key\n' })
  const result = await check(dir, ['auth:', `  htpasswd: ${join(dir, 'users.htpasswd')}`, '  token:', `    key: ${join(dir, 'token.pem')}`])
  const lines = result.stderr.trimEnd().split('\n')
  t.equal(lines.length, 2, 'both files are reported')
  t.match(lines[0], `ferry: auth.htpasswd (${join(dir, 'users.htpasswd')}): `)
  t.match(lines[1], `ferry: auth.token.key (${join(dir, 'token.pem')}): `)
  t.same(result.exits, [2])

  const missing = await check(dir, ['auth:', `  htpasswd: ${join(dir, 'nope')}`])
  t.equal(missing.stderr, `ferry: auth.htpasswd (${join(dir, 'nope')}): cannot be read (ENOENT)\n`)
})

if (why !== undefined) {
  t.test('upstream TLS files', { skip: why }, async () => {})
} else {
  t.test('upstream TLS files: a missing file, an invalid PEM, a key of another certificate', async (t) => {
    const dir = t.testdir({ 'garbage.pem': 'hello\n' })
    const ca = await makeCa(join(dir, 'ca'))
    const a = await issueClientCert(ca, { cn: 'a', name: 'a' })
    const b = await issueClientCert(ca, { cn: 'b', name: 'b' })

    const good = await check(dir, upstream(['tls:', `  caPath: ${ca.certPath}`, `  certPath: ${a.certPath}`, `  keyPath: ${a.keyPath}`]))
    t.equal(good.stderr, '')
    t.equal(good.stdout, `config ok: ${good.file}\n`)

    const missing = await check(dir, upstream(['tls:', `  caPath: ${join(dir, 'nope.pem')}`]))
    t.equal(missing.stderr, `ferry: mirror.upstreams.0.tls.caPath (${join(dir, 'nope.pem')}) of upstream gcr.io: cannot be read (ENOENT)\n`)
    t.same(missing.exits, [2])

    const garbage = await check(dir, upstream(['tls:', `  caPath: ${join(dir, 'garbage.pem')}`]))
    t.match(
      garbage.stderr,
      `ferry: mirror.upstreams.0.tls.caPath (${join(dir, 'garbage.pem')}) of upstream gcr.io: no PEM certificate (-----BEGIN CERTIFICATE-----) found`,
    )
    t.same(garbage.exits, [2])

    const mismatched = await check(dir, upstream(['tls:', `  certPath: ${a.certPath}`, `  keyPath: ${b.keyPath}`]))
    t.match(mismatched.stderr, `ferry: mirror.upstreams.0.tls.keyPath (${b.keyPath}) of upstream gcr.io: is not the private key`)
    t.same(mismatched.exits, [2])
  })
}
