// `ferry healthcheck` against real servers: it finds the port and scheme in the same config as
// `serve`, and fails (exit 1, one line) when nothing answers.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { stringify } from 'yaml'
import { runCli } from '../../src/cli/main.js'
import { defaultConfig } from '../../src/config/schema.js'
import { healthUrl } from '../../src/cli/healthcheck.js'
import { startFerryProcess } from '../helpers/ferry-process.js'
import { closedPort } from '../helpers/http-stub.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { fakeIo } from './fixtures/fake-io.js'

const healthcheck = async (env: Record<string, string>, ...args: string[]) => {
  const fake = fakeIo(env)
  await runCli(['node', 'ferry', 'healthcheck', ...args], fake.io)
  return fake
}

t.test('the URL is the loopback address of a wildcard listen address, https with a serving certificate', async (t) => {
  const config = defaultConfig()
  t.equal(healthUrl(config, '/healthz'), 'http://127.0.0.1:5000/healthz')
  config.listen = { host: '::', port: 5443 }
  config.tls.serving = { cert: 'c', key: 'k' }
  t.equal(healthUrl(config, '/readyz'), 'https://[::1]:5443/readyz')
})

t.test(
  'exit 0 against a running Ferry (plain and TLS), 1 with the reason when nothing answers',
  { skip: pkiUnavailable() ?? false },
  async (t) => {
    const dir = t.testdir()
    const ca = await makeCa(join(dir, 'pki'))
    const server = await issueServerCert(ca, { cn: 'ferry.test', name: 'server' })
    const tls = { cert: server.fullChainPath, key: server.keyPath }
    for (const [name, tlsSection] of [
      ['plain', {}],
      ['tls', tls],
    ] as const) {
      const port = await closedPort()
      const file = join(dir, `${name}.yaml`)
      await mkdir(join(dir, name))
      await writeFile(
        file,
        stringify({
          listen: `127.0.0.1:${port}`,
          storage: { filesystem: { path: join(dir, name) } },
          tls: tlsSection,
          mirror: { upstreams: [], defaultUpstream: '' },
        }),
      )

      const down = await healthcheck({ FERRY_CONFIG: file })
      t.same(down.exits, [1], `${name}: nothing listens yet`)
      t.match(down.stderr(), new RegExp(`ferry: https?://127\\.0\\.0\\.1:${port}/healthz: ECONNREFUSED`))

      const ferry = await startFerryProcess(['serve', '--config', file])
      t.teardown(() => ferry.stop())
      const up = await healthcheck({}, '--config', file)
      t.same(up.exits, [], `${name}: healthy (stderr: ${up.stderr()})`)
      t.same((await healthcheck({ FERRY_CONFIG: file }, '--path', '/readyz')).exits, [], `${name}: ready`)
      t.same((await healthcheck({ FERRY_CONFIG: file }, '--path', '/nowhere')).exits, [1], `${name}: a 404 is not healthy`)
    }
  },
)
