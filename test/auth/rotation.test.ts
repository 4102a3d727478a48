// Live credential rotation through the real server: the htpasswd file is watched, a removed
// user's next request fails, an added one works, and a broken file keeps the previous accounts
// with one clear error naming the file. A broken file at start-up stops start-up.
import { rename, writeFile } from 'node:fs/promises'
import t from 'tap'
import { compose } from '../../src/app/compose-app.js'
import { eventually } from '../helpers/eventually.js'
import { defaultConfig } from '../../src/config/schema.js'
import { createLogger } from '../../src/observability/logger.js'
import { startAuthServer, type AuthServer } from '../helpers/auth-server.js'
import { basic, htpasswdLine, writeHtpasswd } from '../helpers/htpasswd.js'

const roles = [{ subjects: ['alice', 'bob', 'carol'], namespaces: ['team/**'], role: 'editor' as const }]

async function status(ferry: AuthServer, user: string, password: string): Promise<number> {
  return (await fetch(`${ferry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: basic(user, password) } }))
    .status
}

t.test('the htpasswd file is watched: removals, additions and password changes apply to the next request', async (t) => {
  const ferry = await startAuthServer(t, { users: { alice: 'a-pw', bob: 'b-pw' }, auth: { roles } })
  t.equal(await status(ferry, 'bob', 'b-pw'), 202, 'bob can push')
  t.equal(await status(ferry, 'carol', 'c-pw'), 401, 'carol does not exist yet')

  await writeHtpasswd(ferry.htpasswd, { alice: 'a-pw', carol: 'c-pw' })
  t.ok(
    await eventually(async () => (await status(ferry, 'bob', 'b-pw')) === 401),
    'bob removed: his next request is 401 (a cached verification does not outlive him)',
  )
  t.equal(await status(ferry, 'carol', 'c-pw'), 202, 'carol added')
  t.equal(await status(ferry, 'alice', 'a-pw'), 202, 'alice unaffected')

  // Rewritten in place (not renamed) with a new password for alice.
  await writeFile(ferry.htpasswd, `${await htpasswdLine('alice', 'a-new-pw')}\n${await htpasswdLine('carol', 'c-pw')}\n`)
  t.ok(await eventually(async () => (await status(ferry, 'alice', 'a-pw')) === 401), 'the old password stops working')
  t.equal(await status(ferry, 'alice', 'a-new-pw'), 202, 'the new one works')
  t.ok(
    ferry.records().some((r) => r.msg === 'htpasswd file reloaded'),
    'reloads are logged',
  )
})

t.test('a broken file keeps the previous accounts and logs one error naming the file', async (t) => {
  const ferry = await startAuthServer(t, { users: { alice: 'a-pw', bob: 'b-pw' }, auth: { roles } })
  const errors = () => ferry.records().filter((r) => r.level === 50)
  // An MD5 entry: the operator forgot -B.
  await writeFile(`${ferry.htpasswd}.tmp`, `${await htpasswdLine('alice', 'a-pw')}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n`)
  await rename(`${ferry.htpasswd}.tmp`, ferry.htpasswd)
  t.ok(await eventually(async () => errors().length > 0), 'an error is logged')
  t.equal(await status(ferry, 'bob', 'b-pw'), 202, 'bob still works: the previous accounts are kept')
  // The same broken content written again, and a reload asked for: still one error.
  await writeFile(ferry.htpasswd, `${await htpasswdLine('alice', 'a-pw')}\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n`)
  await ferry.composed.reloadCredentials()
  t.equal(errors().length, 1, 'one error, not one per attempt')
  const error = errors()[0]!
  t.match(String(error.msg), ferry.htpasswd, 'the message names the file')
  t.match(String(error.problem), 'line 2: user "bob" does not have a bcrypt hash', 'and the problem')
  t.notMatch(JSON.stringify(error), /\$apr1\$|\$2y\$/, 'but no hash')
  const metrics = await ferry.composed.metrics.registry.getSingleMetricAsString('ferry_auth_reloads_total')
  t.match(metrics, /ferry_auth_reloads_total\{file="htpasswd",outcome="error"\} [1-9]/, 'counted as a failed reload')

  await writeHtpasswd(ferry.htpasswd, { alice: 'a-pw' })
  t.ok(await eventually(async () => (await status(ferry, 'bob', 'b-pw')) === 401), 'fixed: the new accounts apply')
})

t.test('a missing or broken htpasswd file stops start-up with a message naming it', async (t) => {
  const dir = t.testdir({ 'broken.htpasswd': 'alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n' })
  const config = defaultConfig()
  config.mirror = { ...config.mirror, upstreams: [], defaultUpstream: undefined }
  config.storage.filesystem.path = dir
  const logger = createLogger('silent')
  config.auth.htpasswd = `${dir}/broken.htpasswd`
  await t.rejects(compose(config, logger), {
    message: `${dir}/broken.htpasswd: line 1: user "alice" does not have a bcrypt hash; only bcrypt is supported (htpasswd -B)`,
  })
  config.auth.htpasswd = `${dir}/missing.htpasswd`
  await t.rejects(compose(config, logger), { code: 'ENOENT' })
})
