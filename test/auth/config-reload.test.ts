// Role bindings live in the config file: a changed file (watched) or SIGHUP applies them to the
// next request of a running Ferry process; a file that no longer validates keeps the running
// policy and logs why.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess } from '../helpers/ferry-process.js'
import { basic, htpasswdMissing, writeHtpasswd } from '../helpers/htpasswd.js'

if (htpasswdMissing) t.plan(0, 'htpasswd (apache2-utils) missing')

function config(dir: string, role: 'viewer' | 'editor'): string {
  return [
    'auth:',
    `  htpasswd: ${join(dir, 'users.htpasswd')}`,
    '  roles:',
    '    - subjects: [alice]',
    '      namespaces: ["team/**"]',
    `      role: ${role}`,
    'mirror:',
    '  upstreams: []',
    '',
  ].join('\n')
}

/** Replaces a file the way editors and Kubernetes do: write aside, rename over. */
async function replace(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text)
  await rename(`${path}.new`, path)
}

t.test('role bindings follow the config file without a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-config-reload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeHtpasswd(join(dir, 'users.htpasswd'), { alice: 'alice-pw' })
  const file = join(dir, 'ferry.yaml')
  await writeFile(file, config(dir, 'editor'))
  const ferry = await startFerryProcess(['serve', '--config', file, '--listen', '127.0.0.1:0', '--storage', join(dir, 'data')])
  t.teardown(() => ferry.stop())

  const push = async () =>
    (await fetch(`${ferry.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { authorization: basic('alice', 'alice-pw') } }))
      .status
  /** Polls until a push is answered `want`. */
  const pushAnswers = (want: number) => eventually(async () => (await push()) === want && want, { message: `a push answered ${want}` })
  t.equal(await push(), 202, 'an editor may push')

  await replace(file, config(dir, 'viewer'))
  t.equal(await pushAnswers(403), 403, 'after the file changed, a viewer may not')

  await replace(file, 'auth:\n  roles: 5\n')
  await eventually(() => /config reload failed, keeping the running configuration/.test(ferry.logs()), {
    message: 'the failed reload logged',
  })
  t.pass('the broken file is reported')
  t.equal(await push(), 403, 'a broken file keeps the running policy')

  await writeFile(file, config(dir, 'editor')) // rewritten in place, then announced by SIGHUP
  process.kill(ferry.pid, 'SIGHUP')
  t.equal(await pushAnswers(202), 202, 'SIGHUP applies the fixed file')
})
