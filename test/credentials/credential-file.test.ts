// A credential file swaps in valid replacements, keeps the previous content for broken ones and
// reports each broken content once, without quoting it.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CredentialFile, CredentialFileError, type CredentialFileReport } from '../../src/credentials/credential-file.js'
import { parseServiceAccountKey } from '../../src/credentials/service-account-key.js'
import { generateKeyPairSync } from 'node:crypto'

function keyJson(email: string): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  return JSON.stringify({
    type: 'service_account',
    client_email: email,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    token_uri: 'http://127.0.0.1:1/token',
  })
}

t.test('parseServiceAccountKey: JSON or base64, errors name the field', async (t) => {
  const json = keyJson('a@p.iam.gserviceaccount.com')
  t.equal(parseServiceAccountKey(json).clientEmail, 'a@p.iam.gserviceaccount.com')
  const b64 = parseServiceAccountKey(Buffer.from(json).toString('base64'))
  t.ok(b64.base64)
  t.equal(b64.text, Buffer.from(json).toString('base64'), 'base64 text kept for _json_key_base64')
  t.throws(() => parseServiceAccountKey('{"type":"service_account","private_key":"x"}'), /has no "client_email"/)
  t.throws(
    () => parseServiceAccountKey('{"client_email":"a","private_key":"-----BEGIN PRIVATE KEY-----\\nnope"}'),
    /"private_key" that is not an RSA private key/,
  )
  const err = t.throws(() => parseServiceAccountKey('{"private_key": "SECRET-MATERIAL", oops}')) as Error
  t.equal(err.message, 'is not valid JSON')
})

t.test('reload: new content bumps the generation; broken content is kept out and reported once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-credfile-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'key.json')
  await writeFile(path, keyJson('one@p.iam'))
  const file = await CredentialFile.open(path, parseServiceAccountKey)
  const reports: CredentialFileReport[] = []
  file.onReport((r) => reports.push(r))
  t.equal(file.generation, 1)

  await file.reload()
  t.same(reports, [], 'unchanged content: nothing happens')

  await writeFile(`${path}.tmp`, keyJson('two@p.iam'))
  await rename(`${path}.tmp`, path)
  await file.reload()
  t.equal(file.value.clientEmail, 'two@p.iam')
  t.equal(file.generation, 2)

  await writeFile(path, '{"private_key": "SECRET-MATERIAL"')
  await Promise.all([file.reload(), file.reload()])
  await file.reload()
  t.equal(file.value.clientEmail, 'two@p.iam', 'previous key kept')
  t.equal(file.generation, 2)
  t.same(
    reports,
    [
      { path, result: 'ok' },
      { path, result: 'error', error: 'is not valid JSON' },
    ],
    'one report for the broken content',
  )
  file.close()

  await rm(path)
  const err = await CredentialFile.open(path, parseServiceAccountKey).catch((e: unknown) => e)
  t.ok(err instanceof CredentialFileError)
  t.match((err as Error).message, `${path}: cannot be read (ENOENT)`)
})
