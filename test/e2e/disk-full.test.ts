// A full volume, for real: Ferry's storage on a small tmpfs, filled up by another writer. A push
// fails with a clear OCI error (507, "storage is full") and a log line naming the cause, /readyz
// reports the condition, no temp file or half-written session is left, what was stored before
// still pulls byte for byte, and once space is freed the same push succeeds with no restart.
// A mirror fill of a blob larger than the space left still streams to every client waiting for
// it, digest-verified, leaves nothing partial behind, and the next pull once space is freed caches it.
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { eventually } from '../helpers/eventually.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { htpasswdLine } from '../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage, sha256 } from '../helpers/seed.js'
import { run } from '../helpers/tools.js'

const MiB = 1024 * 1024

const mountPoint = await mkdtemp(join(tmpdir(), 'ferry-full-'))
const mounted = await run('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mountPoint]).then(
  () => true,
  () => false,
)
if (!mounted) {
  await rm(mountPoint, { recursive: true, force: true })
  t.plan(0, 'cannot mount a tmpfs here (needs root)')
} else {
  t.teardown(async () => {
    await run('umount', [mountPoint]).catch(() => {})
    await rm(mountPoint, { recursive: true, force: true })
  })
  t.test('a push into a full volume fails cleanly and succeeds once space is freed', main)
  const unavailable = distributionUnavailable()
  if (unavailable) t.comment(`skipping the mirror fill on a full volume: ${unavailable}`)
  else t.test('a mirror fill larger than the space left streams to its clients and is cached once space returns', fillOnFullVolume)
}

async function fillOnFullVolume(t: Test): Promise<void> {
  // A volume of its own, large enough to take the blob once the filler is gone.
  const volume = join(mountPoint, 'fill')
  await mkdir(volume)
  await run('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', volume])
  t.teardown(() => run('umount', [volume]).catch(() => {}))
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const layer = randomBytes(20 * MiB)
  const image = await seedImage(upstream.url, 'lib/big', 'v1', { layers: [layer] })
  const digest = image.layers[0]!.digest
  const storage = join(volume, 'data')
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', upstream.url)], defaultUpstream: 'gcr.io' },
    {
      auth: { anonymousPull: ['**'] },
      configure: (config) => {
        config.storage.driver = 'filesystem'
        config.storage.filesystem.path = storage
      },
    },
  )
  t.teardown(async () => {
    if (!t.passing()) t.comment(ferry.logs.slice(-10).join(''))
    await ferry.close()
  })
  const url = `${ferry.url}/v2/lib/big/blobs/${digest}`
  // Another writer leaves 1 MiB: under the share of the volume that counts as room again.
  const { bavail, bsize } = await statfs(volume)
  const filler = join(volume, 'filler')
  await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - MiB)))

  // Two clients at once, one reading slowly: the upstream is paced by the slower.
  const fast = fetch(url).then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }))
  const slow = fetch(url).then(async (res) => {
    const chunks: Buffer[] = []
    for await (const chunk of res.body!) {
      chunks.push(Buffer.from(chunk))
      await delay(5) // a slow client, not a synchronisation
    }
    return { status: res.status, body: Buffer.concat(chunks) }
  })
  for (const [name, pulled] of [
    ['first', await fast],
    ['second', await slow],
  ] as const) {
    t.equal(pulled.status, 200, `${name} client answered`)
    t.equal(pulled.body.length, layer.length, `${name} client got every byte`)
    t.equal(sha256(pulled.body), digest, `${name} client got the blob byte for byte`)
  }

  const metrics = await eventually(
    async () => {
      const text = await fetch(`${ferry.url}/metrics`).then((r) => r.text())
      return /^ferry_mirror_blob_fills_unstored_total\{upstream="gcr.io"\} 1$/m.test(text) && text
    },
    { message: 'the unstored fill counted' },
  )
  t.match(metrics, /^ferry_storage_full 1$/m, 'the full volume is reported')
  t.ok(
    ferry.logs.some((line) => line.includes('blob streamed to its clients but not cached') && line.includes('ENOSPC')),
    'a warning names the cause',
  )
  t.match(await (await fetch(`${ferry.url}/readyz`)).json(), { status: 'degraded', storage: /ENOSPC/ }, '/readyz shows degraded')
  await eventually(async () => (await readdir(join(storage, '_tmp')).catch(() => [])).length === 0, { message: 'no temp file left behind' })
  const sessions = await readdir(join(storage, 'repositories/_cache/gcr.io/lib/big/_uploads')).catch(() => [])
  t.same(sessions, [], 'no upload session left behind')
  const hex = digest.slice('sha256:'.length)
  const stored = join(storage, 'blobs/sha256', hex.slice(0, 2), hex, 'data')
  t.equal(await stat(stored).catch(() => undefined), undefined, 'nothing of the blob is stored')

  await rm(filler)
  const again = await fetch(url)
  t.equal(sha256(Buffer.from(await again.arrayBuffer())), digest, 'the next pull once space is freed gets the blob')
  await eventually(() => stat(stored).then((found) => found.size === layer.length), { message: 'the blob cached' })
  await eventually(async () => ((await (await fetch(`${ferry.url}/readyz`)).json()) as { status: string }).status === 'ready', {
    message: '/readyz back to ready',
  })
}

async function main(t: Test): Promise<void> {
  const seeder = { username: 'seeder', password: 'seeder-pw' }
  const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
  const storage = join(mountPoint, 'data')
  const ferry = await startMirrorServer(
    // Never reached: the test only pushes and pulls pushed content.
    { upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9')], defaultUpstream: 'gcr.io' },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
      },
      configure: (config) => {
        config.storage.filesystem.path = storage
      },
    },
  )
  t.teardown(async () => {
    if (!t.passing()) t.comment(ferry.logs.slice(-10).join(''))
    await ferry.close()
  })
  const auth = { authorization: `Basic ${Buffer.from(`${seeder.username}:${seeder.password}`).toString('base64')}` }

  const kept = await seedImage(ferry.url, 'team/kept', 'v1', { layers: [randomBytes(MiB)], auth: seeder })

  // Another writer takes all but 256 KiB of the volume.
  const { bavail, bsize } = await statfs(mountPoint)
  const filler = join(mountPoint, 'filler')
  await writeFile(filler, Buffer.alloc(Math.max(0, bavail * bsize - 256 * 1024)))

  const big = randomBytes(2 * MiB)
  const failure = await seedImage(ferry.url, 'team/big', 'v1', { layers: [big], auth: seeder }).then(
    () => undefined,
    (err: unknown) => String(err),
  )
  t.ok(failure, 'the push failed')
  t.match(failure, /got 507/, 'with 507 Insufficient Storage')
  t.match(
    failure,
    /"code":"UNKNOWN","message":"registry storage is full: no space left on device \(ENOSPC\)/,
    'and an OCI error saying why',
  )
  t.ok(
    ferry.logs.some((line) => line.includes('storage is full') && line.includes('ENOSPC')),
    'a log line names the cause',
  )
  const ready = await fetch(`${ferry.url}/readyz`)
  t.equal(ready.status, 200, 'still ready: stored content is served')
  t.match(await ready.json(), { status: 'degraded', storage: /ENOSPC/ }, '/readyz reports the full volume')
  const full = await fetch(`${ferry.url}/metrics`).then((r) => r.text())
  t.match(full, /^ferry_storage_full 1$/m)

  // Eviction started by the full volume writes (and, failing, removes) temp files of its own meanwhile.
  await eventually(async () => (await readdir(join(storage, '_tmp')).catch(() => [])).length === 0, { message: 'no temp file left behind' })
  const sessions = await readdir(join(storage, 'repositories/team/big/_uploads')).catch(() => [])
  t.same(sessions, [], 'the upload session cut short was discarded')

  for (const blob of [kept.config, ...kept.layers]) {
    const res = await fetch(`${ferry.url}/v2/team/kept/blobs/${blob.digest}`, { headers: auth })
    t.equal(res.status, 200)
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest, 'content stored before is intact')
  }

  await rm(filler)
  const pushed = await seedImage(ferry.url, 'team/big', 'v1', { layers: [big], auth: seeder })
  const res = await fetch(`${ferry.url}/v2/team/big/blobs/${pushed.layers[0]!.digest}`, { headers: auth })
  t.equal(sha256(Buffer.from(await res.arrayBuffer())), pushed.layers[0]!.digest, 'the same push succeeds once space is freed')
  await eventually(async () => ((await (await fetch(`${ferry.url}/readyz`)).json()) as { status: string }).status === 'ready', {
    message: '/readyz back to ready',
  })
  const scrub = await ferry.composed.lifecycle.scrub(false)
  t.same(scrub.corrupt, [], 'scrub finds nothing corrupt')
  t.ok(
    ferry.logs.some((line) => line.includes('storage accepts writes again')),
    'recovery is logged',
  )
}
