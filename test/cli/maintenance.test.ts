// `ferry storage du` and `ferry gc --dry-run` on a store the real server wrote: usage by namespace
// and kind, and a dry run that lists without deleting.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { runCli, type CliIo } from '../../src/cli/main.js'
import { htpasswdLine } from '../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage } from '../helpers/seed.js'

async function ferry(args: string[]): Promise<{ out: string; code: number }> {
  const out: string[] = []
  let code = 0
  const io: CliIo = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => out.push(s) },
    env: {},
    exit: (c) => void (code = c),
    onSignal: () => {},
    finish: () => {},
  }
  await runCli(['node', 'ferry', ...args], io)
  return { out: out.join(''), code }
}

t.test('storage du and gc --dry-run', async (t) => {
  const seeder = { username: 'seeder', password: 'seeder-pw' }
  const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
  const server = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9')], defaultUpstream: 'gcr.io' },
    { auth: { users: [{ name: seeder.username, password: seederHash, groups: [] }] } },
  )
  t.teardown(() => server.close())
  const image = await seedImage(server.url, 'team/app', 'v1', { layers: [randomBytes(50_000)], auth: seeder })
  const total = image.manifest.size + image.config.size + image.layers[0]!.size

  const du = await ferry(['storage', 'du', '--storage', server.root])
  t.equal(du.code, 0)
  t.match(du.out, new RegExp(`^team\\s+pushed\\s+${total}$`, 'm'), 'the pushed namespace with its bytes')
  t.match(du.out, new RegExp(`^pushed ${total}$`, 'm'))

  const gc = await ferry(['gc', '--dry-run', '--storage', server.root])
  t.equal(gc.code, 0)
  t.match(gc.out, /would delete 0 blobs, 0 bytes; 0 upload sessions/, 'nothing referenced would go')
})
