// The config file's `mirror` section is live in a running `ferry serve` process: an added
// upstream serves the next request, a changed URL routes new requests to the new registry while
// a large download through the old one finishes byte-exact, an invalid edit keeps the running
// routes with one error naming the key, and SIGHUP applies a change the file watch did not see.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { startGateProxy } from '../helpers/gate-proxy.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const accept = 'application/vnd.oci.image.manifest.v1+json'
// A fixed mtime (whole seconds, so it round-trips exactly) lets a test hide an edit from the watch.
const fixedTime = new Date('2030-01-01T00:00:00Z')

function mirrorConfig(upstreams: Array<{ name: string; url: string }>, extra = ''): string {
  const lines = ['mirror:', '  defaultUpstream: ""', upstreams.length === 0 ? '  upstreams: []' : '  upstreams:']
  for (const u of upstreams) lines.push(`    - name: ${u.name}`, `      url: ${u.url}`, '      retries: 0')
  return `${lines.join('\n')}\n${extra}`
}

async function replace(path: string, text: string): Promise<void> {
  await writeFile(`${path}.new`, text)
  await rename(`${path}.new`, path)
}

async function distribution(t: Test): Promise<Distribution> {
  const registry = await startDistribution()
  t.teardown(() => registry.stop())
  return registry
}

async function ferryWith(t: Test, text: string): Promise<{ ferry: FerryProcess; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-mirror-reload-'))
  const file = join(dir, 'ferry.yaml')
  await writeFile(file, text)
  await utimes(file, fixedTime, fixedTime)
  const ferry = await startFerryProcess([
    'serve',
    '--config',
    file,
    '--listen',
    '127.0.0.1:0',
    '--storage',
    join(dir, 'data'),
    '--log-level',
    'debug',
  ])
  t.teardown(async () => {
    await ferry.stop()
    await rm(dir, { recursive: true, force: true })
  })
  return { ferry, file }
}

type LogLine = Record<string, unknown> & { msg?: string }

function logLines(ferry: FerryProcess): LogLine[] {
  return ferry
    .logs()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
}

/** Waits for the `count`-th log line with message `msg`. */
async function logged(ferry: FerryProcess, msg: string, count = 1): Promise<LogLine> {
  for (let i = 0; i < 400; i++) {
    const found = logLines(ferry).filter((l) => l.msg === msg)
    if (found.length >= count) return found[count - 1]!
    await sleep(25)
  }
  throw new Error(`no log line "${msg}" (#${count}) in:\n${ferry.logs()}`)
}

async function manifestDigest(ferry: FerryProcess, path: string): Promise<string | number> {
  const response = await fetch(`${ferry.url}/v2/${path}/manifests/v1`, { headers: { accept } })
  const body = Buffer.from(await response.arrayBuffer())
  return response.status === 200 ? sha256(body) : response.status
}

async function pullsWhole(ferry: FerryProcess, path: string, image: SeededImage): Promise<boolean> {
  if ((await manifestDigest(ferry, path)) !== image.manifest.digest) return false
  for (const blob of [image.config, ...image.layers]) {
    const response = await fetch(`${ferry.url}/v2/${path}/blobs/${blob.digest}`)
    if (response.status !== 200 || sha256(Buffer.from(await response.arrayBuffer())) !== blob.digest) return false
  }
  return true
}

t.test('an upstream added to the config file of a running ferry serves pulls without a restart', async (t) => {
  const registry = await distribution(t)
  const image = await seedImage(registry.url, 'team/app', 'v1')
  const { ferry, file } = await ferryWith(t, mirrorConfig([]))
  // Without an upstream the name is a local repository, which is private: not served.
  t.equal(await manifestDigest(ferry, 'added.test/team/app'), 401, 'no upstream yet: nothing to pull')

  await replace(file, mirrorConfig([{ name: 'added.test', url: registry.url }]))
  const applied = await logged(ferry, 'mirror settings applied; new requests use them')
  t.same(applied.upstreams, ['added.test'])
  t.ok(await pullsWhole(ferry, 'added.test/team/app', image), 'pulled through the new upstream')
  t.ok(
    registry.requests().some((r) => r.path.startsWith('/v2/team/app/manifests/v1')),
    'the upstream served it',
  )
})

t.test('a changed URL: the download in flight finishes byte-exact from the old registry, new requests go to the new one', async (t) => {
  const [oldRegistry, newRegistry] = await Promise.all([distribution(t), distribution(t)])
  const big = randomBytes(24 * 1024 * 1024)
  const bigImage = await seedImage(oldRegistry.url, 'team/big', 'v1', { layers: [big] })
  const oldApp = await seedImage(oldRegistry.url, 'team/app', 'v1')
  const newApp = await seedImage(newRegistry.url, 'team/app', 'v1')
  const bigDigest = bigImage.layers[0]!.digest
  // Between Ferry and the old registry: holds the big blob after 2 MiB until told.
  const gate = await startGateProxy(oldRegistry.url, bigDigest, 2 * 1024 * 1024)
  t.teardown(() => gate.close())
  const { ferry, file } = await ferryWith(t, mirrorConfig([{ name: 'moving.test', url: gate.url }]))

  const download = fetch(`${ferry.url}/v2/moving.test/team/big/blobs/${bigDigest}`).then(async (response) => {
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of response.body ?? []) {
      hash.update(chunk as Uint8Array)
      bytes += (chunk as Uint8Array).length
    }
    return { status: response.status, bytes, digest: `sha256:${hash.digest('hex')}` }
  })
  await gate.holding
  const oldRequestsBefore = oldRegistry.requests().length

  await replace(file, mirrorConfig([{ name: 'moving.test', url: newRegistry.url }]))
  const applied = await logged(ferry, 'mirror settings applied; new requests use them')
  t.same(applied.replaced, ['moving.test'])
  t.equal(await manifestDigest(ferry, 'moving.test/team/app'), newApp.manifest.digest, 'a new request is served by the new URL')
  t.not(newApp.manifest.digest, oldApp.manifest.digest)
  t.notOk(
    oldRegistry
      .requests()
      .slice(oldRequestsBefore)
      .some((r) => r.path.startsWith('/v2/team/app/')),
    'the old registry was not asked',
  )

  gate.release()
  t.same(await download, { status: 200, bytes: big.length, digest: bigDigest }, 'the download in flight completed byte-exact')
  // The blob was committed to the cache: served again without any registry.
  const again = await fetch(`${ferry.url}/v2/moving.test/team/big/blobs/${bigDigest}`)
  t.equal(sha256(Buffer.from(await again.arrayBuffer())), bigDigest)
  t.notOk(
    newRegistry.requests().some((r) => r.path.includes(bigDigest)),
    'the new registry never served the old download',
  )
})

t.test('an invalid edit keeps the running routes with one error naming the key; SIGHUP applies an edit the watch missed', async (t) => {
  const [first, second] = await Promise.all([distribution(t), distribution(t)])
  const firstApp = await seedImage(first.url, 'team/app', 'v1')
  const secondApp = await seedImage(second.url, 'team/app', 'v1')
  const { ferry, file } = await ferryWith(t, mirrorConfig([{ name: 'kept.test', url: first.url }]))
  t.equal(await manifestDigest(ferry, 'kept.test/team/app'), firstApp.manifest.digest)

  await replace(file, mirrorConfig([{ name: 'kept.test', url: 'ftp://nowhere.test' }]))
  const failed = await logged(ferry, 'config reload failed, keeping the running configuration')
  t.match(failed.error, /mirror\.upstreams\.0\.url/, 'the error names the key')
  t.equal(failed.level, 50, 'at error level')
  await sleep(500) // any further file events have been handled
  t.equal(logLines(ferry).filter((l) => l.level === 50).length, 1, 'one error line')
  t.notOk(logLines(ferry).some((l) => l.msg === 'mirror settings applied; new requests use them'))
  t.ok(await pullsWhole(ferry, 'kept.test/team/app', firstApp), 'pulls still go through the running upstream')

  // Back to a valid file, then an in-place edit of equal size with the mtime put back: the watch
  // cannot tell it changed, so only SIGHUP applies it. Ports have as many digits, padded anyway.
  const valid = mirrorConfig([{ name: 'kept.test', url: first.url }])
  await replace(file, valid)
  await logged(ferry, 'reloading', 2)
  await utimes(file, fixedTime, fixedTime)
  await logged(ferry, 'reloading', 3) // the watch has seen the fixed mtime
  await sleep(300)
  const hidden = mirrorConfig([{ name: 'kept.test', url: second.url }])
  const padding = valid.length - hidden.length
  t.ok(padding >= 0 || Buffer.byteLength(hidden) === Buffer.byteLength(valid))
  await writeFile(file, padding > 0 ? `${hidden}${'#'.padEnd(padding, ' ')}` : hidden)
  await utimes(file, fixedTime, fixedTime)
  await sleep(500)
  const reloadsBefore = logLines(ferry).filter((l) => l.msg === 'reloading').length
  t.notOk(
    logLines(ferry).some((l) => l.msg === 'mirror settings applied; new requests use them'),
    'not applied before SIGHUP',
  )
  process.kill(ferry.pid, 'SIGHUP')
  const reloading = await logged(ferry, 'reloading', reloadsBefore + 1)
  t.equal(reloading.trigger, 'SIGHUP')
  const applied = await logged(ferry, 'mirror settings applied; new requests use them')
  t.same(applied.replaced, ['kept.test'])
  // The tag cached from the old URL is revalidated against the new one on its next use (and
  // served stale while that runs, as any tag past its TTL).
  let digest = await manifestDigest(ferry, 'kept.test/team/app')
  for (let i = 0; i < 100 && digest !== secondApp.manifest.digest; i++) {
    await sleep(50)
    digest = await manifestDigest(ferry, 'kept.test/team/app')
  }
  t.equal(digest, secondApp.manifest.digest, 'after SIGHUP the new URL serves')
  t.ok(
    second.requests().some((r) => r.path.startsWith('/v2/team/app/manifests/v1')),
    'the new registry was asked',
  )
})
