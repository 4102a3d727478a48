// deploy/systemd/ferry.service: checked by systemd itself where it is installed (systemd-analyze
// verify: every directive known, every program found; security: the exposure score), and against
// the CLI and config: the command line parses as `ferry serve` parses it, the environment names
// config keys, the store is the StateDirectory and the stop timeout outwaits the graceful shutdown.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildProgram } from '../../src/cli/main.js'
import { envOverrides, type IgnoredEnv } from '../../src/config/env.js'
import { loadConfig, nonConfigEnv } from '../../src/config/load.js'
import { configSchema } from '../../src/config/schema.js'
import { missingTools, run } from '../helpers/tools.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'

const root = join(import.meta.dirname, '..', '..')
const unitPath = join(root, 'deploy', 'systemd', 'ferry.service')

async function unit(): Promise<{ text: string; all(key: string): string[]; one(key: string): string | undefined }> {
  const text = await readFile(unitPath, 'utf8')
  const all = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!)
  return { text, all, one: (key) => all(key).at(-1) }
}

const noSystemd = missingTools('systemd-analyze').length > 0 ? 'needs systemd-analyze (Debian systemd)' : false
t.test('systemd-analyze verify accepts the unit without a warning; its exposure score stays low', { skip: noSystemd }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-systemd-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // systemd looks `ferry` up in /usr/local/bin and /usr/bin, where npm install -g links bin/ferry.js;
  // the copy points at this checkout's instead, so verify can check it is executable.
  const { text } = await unit()
  const copy = join(dir, 'ferry.service')
  await writeFile(copy, text.replace(/^ExecStart=ferry /m, `ExecStart=${join(root, 'bin', 'ferry.js')} `))
  const verified = await run('systemd-analyze', ['verify', copy])
  t.equal(verified.stderr.trim(), '', 'no unknown keys, bad values or missing programs')
  const security = await run('systemd-analyze', ['security', '--offline=true', copy])
  const score = Number(/Overall exposure level for ferry\.service: ([\d.]+)/.exec(security.stdout)?.[1])
  t.ok(score <= 2, `exposure level ${score} (0 is the most locked down, 10 none)`)
})

t.test('the unit runs ferry serve with its config, as a dedicated user, reloading with SIGHUP', async (t) => {
  const u = await unit()
  t.equal(u.one('User'), 'ferry')
  t.equal(u.one('ExecReload'), '/bin/kill -HUP $MAINPID', 'serve re-reads its files on SIGHUP')
  t.equal(u.one('KillSignal'), 'SIGTERM', 'serve shuts down gracefully on SIGTERM')
  t.match(u.one('LimitNOFILE'), /^\d+$/)
  for (const key of ['NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'PrivateTmp', 'CapabilityBoundingSet'])
    t.ok(u.one(key) !== undefined, key)

  const [program, command, ...args] = u.one('ExecStart')!.split(/\s+/)
  t.equal(program, 'ferry', 'the npm package bin')
  t.equal(command, 'serve')
  // The flags as `ferry serve` parses them: an unknown one would make commander fail.
  const serve = (await buildProgram(fakeIo().io)).commands.find((c) => c.name() === 'serve')!
  const parsed = serve.parseOptions(args)
  t.same(parsed.unknown, [], 'every flag is one serve knows')
  t.same(args, ['--config', '/etc/ferry/ferry.yaml'])

  // The environment: config keys only, the store in the state directory, with the example config.
  const env = Object.fromEntries(u.all('Environment').map((line) => line.split('=', 2) as [string, string]))
  const ignored: IgnoredEnv[] = []
  envOverrides(configSchema, env, nonConfigEnv, (i) => ignored.push(i))
  t.same(ignored, [], 'every FERRY_* variable is a config key')
  const config = await loadConfig({ file: join(root, 'config', 'ferry.example.yaml'), env })
  t.equal(
    config.storage.filesystem.path,
    `/var/lib/${u.one('StateDirectory')}`,
    'storage is the StateDirectory, writable under ProtectSystem=strict',
  )
  t.equal(u.one('WorkingDirectory'), config.storage.filesystem.path)
  t.ok(Number(u.one('TimeoutStopSec')) * 1000 > config.http.shutdownTimeout, 'systemd waits longer than http.shutdownTimeout')
})
