// The Dockerfile read instruction by instruction and checked against the server: the config it
// ships loads with the image's environment, and port, volume, user, health check, stop signal and
// config location agree with what that config makes Ferry do. (No image is built: no daemon or
// base image here; `ferry healthcheck` itself is run against real servers in test/cli/healthcheck.test.ts.)
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { envOverrides, type IgnoredEnv } from '../../src/config/env.js'
import { loadConfig, nonConfigEnv } from '../../src/config/load.js'
import { configSchema } from '../../src/config/schema.js'

const root = join(import.meta.dirname, '..', '..')

interface Instruction {
  keyword: string
  args: string
}

async function instructions(): Promise<Instruction[]> {
  const text = await readFile(join(root, 'Dockerfile'), 'utf8')
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/)
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') }
    })
}

t.test('multi-stage on Node 24 LTS, the final stage non-root with the built CLI', async (t) => {
  const all = await instructions()
  const froms = all.filter((i) => i.keyword === 'FROM').map((i) => i.args)
  t.equal(froms.length, 2, 'a build stage and a runtime stage')
  for (const from of froms) t.match(from, /^node:24(\.\d+)*-/, `${from} is Node 24`)
  const final = all.slice(all.findLastIndex((i) => i.keyword === 'FROM'))
  const user = final.findLast((i) => i.keyword === 'USER')?.args
  t.equal(user, 'node', 'runs as the base image user node (uid 1000)')
  t.same(JSON.parse(final.find((i) => i.keyword === 'ENTRYPOINT')!.args), ['node', '/opt/ferry/bin/ferry.js'])
  t.same(JSON.parse(final.find((i) => i.keyword === 'CMD')!.args), ['serve'])
  t.ok(existsSync(join(root, 'bin', 'ferry.js')), 'the entrypoint is copied from bin/')
})

t.test("the shipped config loads with the image's environment and matches port, volume, health check and stop signal", async (t) => {
  const all = await instructions()
  const final = all.slice(all.findLastIndex((i) => i.keyword === 'FROM'))
  const env: Record<string, string> = {}
  for (const { args } of final.filter((i) => i.keyword === 'ENV')) {
    for (const [, key, value] of args.matchAll(/(\w+)=(\S+)/g)) env[key!] = value!
  }
  const ignored: IgnoredEnv[] = []
  envOverrides(configSchema, env, nonConfigEnv, (i) => ignored.push(i))
  t.same(ignored, [], 'every FERRY_* variable is a config key (or FERRY_CONFIG)')

  // FERRY_CONFIG names the file a COPY puts there; load that source with the image's environment.
  const copies = final.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).map((i) => i.args.split(/\s+/))
  const shipped = copies.find(([, destination]) => destination === env.FERRY_CONFIG)
  t.ok(shipped, `a config is copied to FERRY_CONFIG (${env.FERRY_CONFIG})`)
  const config = await loadConfig({ file: join(root, shipped![0]!), env })

  t.equal(final.find((i) => i.keyword === 'EXPOSE')?.args, String(config.listen.port), 'EXPOSE is the listen port')
  t.equal(config.listen.host, '0.0.0.0', 'listening on every interface of the container')
  t.equal(final.find((i) => i.keyword === 'VOLUME')?.args, config.storage.filesystem.path, 'the store is the volume')
  t.match(
    final.find((i) => i.keyword === 'RUN' && i.args.includes('chown'))?.args,
    new RegExp(`chown node:node ${config.storage.filesystem.path}`),
    'owned by the user Ferry runs as',
  )
  t.equal(final.find((i) => i.keyword === 'STOPSIGNAL')?.args, 'SIGTERM', 'the signal serve shuts down gracefully on')
  const healthcheck = final.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? ''
  const command = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[]
  t.same(command, ['node', '/opt/ferry/bin/ferry.js', 'healthcheck'], 'the health check reads the same config (FERRY_CONFIG)')
})

t.test('.dockerignore keeps the context small but never drops a file the build copies', async (t) => {
  const ignored = (await readFile(join(root, '.dockerignore'), 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  for (const heavy of ['node_modules', 'dist', '.git', 'test']) t.ok(ignored.includes(heavy), `${heavy} is not sent to the daemon`)
  const copied = (await instructions())
    .filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from'))
    .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
  for (const source of copied) {
    t.ok(existsSync(join(root, source)), `${source} exists`)
    t.notOk(
      ignored.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)),
      `${source} is not excluded`,
    )
  }
})
