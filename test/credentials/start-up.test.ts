// An unusable credential file stops start-up with a message naming upstream and file, never its content.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'

t.test('a broken key file or config.json fails start-up naming upstream and file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cred-startup-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const key = join(dir, 'key.json')
  await writeFile(key, '{"client_email":"a@b","private_key":"TOP-SECRET-MATERIAL"}')
  const err = (await startMirrorServer({ upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9', { gcrKeyPath: key })] }).catch(
    (e: unknown) => e,
  )) as Error
  t.match(err.message, `upstream gcr.io: service-account key file ${key}: has a "private_key" that is not an RSA private key in PEM`)
  t.notMatch(err.message, 'TOP-SECRET')
  const missing = join(dir, 'absent.json')
  const err2 = (await startMirrorServer({
    upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9')],
    pullCredentialConfigPath: missing,
  }).catch((e: unknown) => e)) as Error
  t.match(err2.message, `upstream gcr.io: Docker config file ${missing}: cannot be read (ENOENT)`)
})
