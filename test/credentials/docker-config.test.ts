// Docker config.json parsing and host matching, and the credential helper protocol against real
// helper programs (shell scripts on PATH).
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import t from 'tap'
import { runCredentialHelper } from '../../src/credentials/credential-helper.js'
import { lookupDockerConfig, normaliseRegistryHost, parseDockerConfig } from '../../src/credentials/docker-config.js'

const b64 = (s: string) => Buffer.from(s).toString('base64')

t.test('hosts are normalised: scheme and path dropped, Docker Hub names folded into docker.io', async (t) => {
  t.equal(normaliseRegistryHost('https://index.docker.io/v1/'), 'docker.io')
  t.equal(normaliseRegistryHost('registry-1.docker.io'), 'docker.io')
  t.equal(normaliseRegistryHost('HTTPS://GCR.io/v2/'), 'gcr.io')
  t.equal(normaliseRegistryHost('127.0.0.1:5000'), '127.0.0.1:5000')
})

t.test('auths: base64 auth split at the first colon, username/password, identitytoken, empty entries skipped', async (t) => {
  const config = parseDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:pa:ss:word') },
        'harbor.corp:8443': { username: 'robot$ci', password: 'robot-secret' },
        'https://europe-docker.pkg.dev': { identitytoken: 'refresh-token-1' },
        'quay.io': {},
      },
    }),
  )
  t.same(lookupDockerConfig(config, ['registry-1.docker.io']), {
    kind: 'credentials',
    credentials: { username: 'hubuser', password: 'pa:ss:word' },
  })
  t.same(lookupDockerConfig(config, ['harbor.corp:8443']), {
    kind: 'credentials',
    credentials: { username: 'robot$ci', password: 'robot-secret' },
  })
  t.same(lookupDockerConfig(config, ['europe-docker.pkg.dev']), {
    kind: 'credentials',
    credentials: { username: '<token>', password: 'refresh-token-1' },
  })
  t.same(lookupDockerConfig(config, ['quay.io']), { kind: 'none' })
  t.same(
    lookupDockerConfig(config, ['127.0.0.1:5000', 'harbor.corp:8443']),
    lookupDockerConfig(config, ['harbor.corp:8443']),
    'later names are tried',
  )
})

t.test('credHelpers win for their registry; credsStore covers the rest; Docker Hub asks with its v1 URL', async (t) => {
  const config = parseDockerConfig(
    JSON.stringify({ auths: { 'gcr.io': { auth: b64('a:b') } }, credHelpers: { 'gcr.io': 'gcloud' }, credsStore: 'pass' }),
  )
  t.same(lookupDockerConfig(config, ['gcr.io']), { kind: 'helper', helper: 'gcloud', serverUrl: 'gcr.io' })
  t.same(lookupDockerConfig(config, ['docker.io']), { kind: 'helper', helper: 'pass', serverUrl: 'https://index.docker.io/v1/' })
})

t.test('errors name the entry, never its values', async (t) => {
  const secret = 'very-secret-password'
  for (const text of [
    `{"auths":{"r.io":{"auth":"${b64(secret)}"}}}`,
    `{"auths":{"r.io":{"username":"u"}}}`,
    `{"auths": {"r.io": {"password": "${secret}"`,
    `{"credsStore":"../../bin/sh"}`,
  ]) {
    const err = t.throws(() => parseDockerConfig(text)) as Error
    t.notMatch(err.message, secret)
    t.notMatch(err.message, b64(secret))
  }
})

t.test('credential helpers: the protocol, "not found", failures and timeouts', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-helpers-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const helper = async (name: string, body: string) => {
    const path = join(dir, `docker-credential-${name}`)
    await writeFile(path, `#!/bin/sh\n${body}\n`)
    await chmod(path, 0o755)
  }
  await helper(
    'echo',
    'read host; [ "$1" = get ] || exit 3; printf \'{"ServerURL":"%s","Username":"u-%s","Secret":"s3cret"}\' "$host" "$host"',
  )
  await helper('none', 'echo "credentials not found in native keychain"; exit 1')
  await helper('broken', 'echo "s3cret leaked on failure" >&2; exit 2')
  await helper('slow', 'sleep 5')
  const path = process.env.PATH
  process.env.PATH = `${dir}${delimiter}${path ?? ''}`
  t.teardown(() => void (process.env.PATH = path))

  t.same(await runCredentialHelper('echo', 'gcr.io'), { username: 'u-gcr.io', password: 's3cret' })
  t.equal(await runCredentialHelper('none', 'gcr.io'), undefined)
  const broken = (await runCredentialHelper('broken', 'gcr.io').catch((e: unknown) => e)) as Error
  t.match(broken.message, /docker-credential-broken get failed \(exit 2\)/)
  t.notMatch(broken.message, 's3cret')
  const missing = (await runCredentialHelper('absent', 'gcr.io').catch((e: unknown) => e)) as Error
  t.match(missing.message, /docker-credential-absent could not be run \(ENOENT/)
  const slow = (await runCredentialHelper('slow', 'gcr.io', { timeoutMs: 200 }).catch((e: unknown) => e)) as Error
  t.match(slow.message, /did not answer within 200 ms/)
})
