// Role bindings live in the config file: a changed file (watched) or SIGHUP applies them to the
// next request of a running Ferry process; a file that no longer validates keeps the running
// policy and logs why.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
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
  const eventually = async (want: number) => {
    let got = await push()
    for (let i = 0; i < 100 && got !== want; i++) {
      await sleep(50)
      got = await push()
    }
    return got
  }
  t.equal(await push(), 202, 'an editor may push')

  await replace(file, config(dir, 'viewer'))
  t.equal(await eventually(403), 403, 'after the file changed, a viewer may not')

  await replace(file, 'auth:\n  roles: 5\n')
  await sleep(400)
  t.equal(await push(), 403, 'a broken file keeps the running policy')
  t.match(ferry.logs(), /config reload failed, keeping the running configuration/)

  await writeFile(file, config(dir, 'editor')) // rewritten in place, then announced by SIGHUP
  process.kill(ferry.pid, 'SIGHUP')
  t.equal(await eventually(202), 202, 'SIGHUP applies the fixed file')
})
