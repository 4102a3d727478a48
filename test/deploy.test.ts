// The shipped deployment material must carry a config Ferry accepts.
import { readFile, mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '../src/config/load.js'

const root = join(import.meta.dirname, '..')

t.test('the Kubernetes ConfigMap holds a valid Ferry config matching the volume mount', async (t) => {
  const documents = parseAllDocuments(await readFile(join(root, 'deploy/kubernetes/ferry.yaml'), 'utf8')).map((d) => d.toJS())
  const configMap = documents.find((d) => d.kind === 'ConfigMap')
  const dir = await mkdtemp(join(tmpdir(), 'ferry-deploy-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'ferry.yaml'), configMap.data['ferry.yaml'])
  const config = await loadConfig({ file: join(dir, 'ferry.yaml'), env: {} })
  const deployment = documents.find((d) => d.kind === 'Deployment')
  const container = deployment.spec.template.spec.containers[0]
  const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'data')
  t.equal(config.storage.filesystem.path, mount.mountPath)
  t.equal(config.listen.port, container.ports[0].containerPort)
  t.ok(
    deployment.spec.template.spec.terminationGracePeriodSeconds * 1000 > config.http.shutdownTimeout,
    'grace period covers the shutdown timeout',
  )
  t.equal(deployment.spec.template.spec.enableServiceLinks, false, 'no FERRY_* service-link variables from the Service named ferry')
})

t.test('the Dockerfile runs the built CLI and stores data on the declared volume', async (t) => {
  const dockerfile = await readFile(join(root, 'Dockerfile'), 'utf8')
  t.match(dockerfile, /FERRY_STORAGE_FILESYSTEM_PATH=\/var\/lib\/ferry/)
  t.match(dockerfile, /VOLUME \/var\/lib\/ferry/)
  t.match(dockerfile, /ENTRYPOINT \["node", "\/opt\/ferry\/bin\/ferry\.js"\]/)
})

t.test('the systemd unit runs ferry serve, reloads with SIGHUP and outwaits the graceful shutdown', async (t) => {
  const unit = await readFile(join(root, 'deploy/systemd/ferry.service'), 'utf8')
  const setting = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1]
  t.match(setting('ExecStart'), /^ferry serve --config (\S+)$/)
  t.equal(setting('ExecReload'), '/bin/kill -HUP $MAINPID')
  t.equal(setting('StateDirectory'), 'ferry')
  t.equal(setting('Environment'), 'FERRY_STORAGE_FILESYSTEM_PATH=/var/lib/ferry', 'storage is the StateDirectory')
  const defaults = await loadConfig({ env: {} })
  t.ok(Number(setting('TimeoutStopSec')) * 1000 > defaults.http.shutdownTimeout, 'systemd waits longer than the shutdown timeout')
})
