// Three `ferry serve` processes on one S3 bucket (s3rver) with a real redis-server as their
// lease store, and CNCF distribution upstream behind gate proxies that hold a blob's body
// part-way (so a fill is provably in flight while the other requests arrive). Checks: many
// concurrent cold pulls spread over the replicas cost one upstream fetch, all byte-exact; a
// filling replica killed mid-fill is taken over and the pulls on the others complete; writes
// spread over replicas converge; and without Redis each replica fetches on its own.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t from 'tap'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { startGateProxy, type GateProxy } from '../helpers/gate-proxy.js'
import { onFreePort } from '../helpers/ports.js'
import { basic, writeHtpasswd } from '../helpers/htpasswd.js'
import { startRedisServer, type RedisTestServer } from '../helpers/redis-server.js'
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js'
import { pushBlob, pushManifest, seedImage, sha256, type SeededImage } from '../helpers/seed.js'
import { missingTools } from '../helpers/tools.js'

const MiB = 1024 * 1024
const leaseTtl = '2s'

const unavailable =
  distributionUnavailable() ?? (missingTools('redis-server', 'htpasswd').length > 0 ? 'needs redis-server and htpasswd' : undefined)
if (unavailable) t.plan(0, `replicas test skipped: ${unavailable}`)
// A failed set-up is reported as a failure with its cause, not as a bare non-zero exit.
else await main().catch((err: unknown) => t.threw(err as Error))

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-replicas-'))
  const stops: Array<() => Promise<unknown>> = []
  const replicas: FerryProcess[] = []
  t.teardown(async () => {
    if (!t.passing()) {
      for (const r of replicas) {
        const problems = r
          .logs()
          .split('\n')
          .filter((l) => /"level":(40|50|60)/.test(l) && !l.includes('TLS is off'))
        t.comment(`replica ${r.url} warnings and errors:\n${problems.join('\n')}\noutput (tail):\n${r.logs().slice(-3000)}`)
      }
    }
    for (const stop of stops.reverse()) await stop().catch(() => {})
    await rm(work, { recursive: true, force: true })
  })
  const s3: S3TestServer = await startS3Server('ferry-replicas')
  stops.push(() => s3.close())
  const redisServer: RedisTestServer = await startRedisServer()
  stops.push(() => redisServer.stop())
  const redis = new Redis(redisServer.url)
  stops.push(() => redis.quit())
  const registry: Distribution = await startDistribution()
  stops.push(() => registry.stop())

  // One image, three layers: one per scenario, each behind its own gate (one upstream name each).
  const layers = [randomBytes(3 * MiB), randomBytes(3 * MiB), randomBytes(2 * MiB)]
  const image = await seedImage(registry.url, 'team/app', 'v1', { layers })
  const [shared, killed, solo] = image.layers as [SeededImage['layers'][0], SeededImage['layers'][0], SeededImage['layers'][0]]
  const gates: Record<string, GateProxy> = {
    'shared.test': await startGateProxy(registry.url, shared.digest, 1 * MiB),
    'killed.test': await startGateProxy(registry.url, killed.digest, 1 * MiB),
    'solo.test': await startGateProxy(registry.url, solo.digest, 1 * MiB),
    'manifest.test': await startGateProxy(registry.url, image.manifest.digest, 64),
    'tag.test': await startGateProxy(registry.url, '/team/app/manifests/v1', 64),
  }
  for (const gate of Object.values(gates)) stops.push(() => gate.close())

  const upstreams = Object.entries(gates).flatMap(([name, gate]) => [`    - name: ${name}`, `      url: ${gate.url}`, '      retries: 0'])
  const htpasswd = join(work, 'users.htpasswd')
  const pusher = { username: 'pusher', password: 'pusher-pw' }
  await writeHtpasswd(htpasswd, { pusher: pusher.password })
  const config = join(work, 'ferry.yaml')
  await writeFile(config, ['mirror:', '  defaultUpstream: ""', '  upstreams:', ...upstreams, ''].join('\n'))
  const s3Env = (prefix: string): Record<string, string> => ({
    FERRY_STORAGE_DRIVER: 's3',
    FERRY_STORAGE_S3_BUCKET: s3.bucket,
    FERRY_STORAGE_S3_PREFIX: prefix,
    FERRY_STORAGE_S3_ENDPOINT: s3.endpoint,
    FERRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    FERRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
    FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
    FERRY_STORAGE_S3_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    FERRY_CACHE_METADATA_TTL: '1s',
  })
  // The port is chosen before the start because the replica advertises it to its peers.
  const start = (prefix: string, coordinated: boolean): Promise<FerryProcess> => onFreePort((port) => startOn(port, prefix, coordinated))
  const startOn = async (port: number, prefix: string, coordinated: boolean): Promise<FerryProcess> => {
    const env = s3Env(prefix)
    if (coordinated) {
      Object.assign(env, {
        FERRY_COORDINATION_REDIS_URL: redisServer.url.replace('redis://', 'redis://:never-logged@'),
        FERRY_COORDINATION_ADVERTISE_URL: `http://127.0.0.1:${port}`,
        FERRY_COORDINATION_LEASE_TTL: leaseTtl,
      })
    }
    const ferry = await startFerryProcess(
      ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--htpasswd', htpasswd, '--anonymous-pull', '**'],
      { env, startTimeoutMs: 60_000 },
    )
    stops.push(() => ferry.stop(2_000))
    replicas.push(ferry)
    return ferry
  }
  // The password in the URL: redis-server accepts AUTH with any password only when none is set,
  // so give it one the replicas know.
  await redis.config('SET', 'requirepass', 'never-logged')
  await redis.auth('never-logged')
  const trio = await Promise.all([start('shared', true), start('shared', true), start('shared', true)])
  // Started now, used last: their start-up overlaps the other scenarios.
  const uncoordinated = Promise.all([start('solo', false), start('solo', false)])
  uncoordinated.catch(() => {})

  const upstreamBlobGets = async (digest: string): Promise<number> =>
    (await registry.loggedRequests()).filter((r) => r.method === 'GET' && r.path.includes(`/blobs/${digest}`) && r.status < 300).length
  const upstreamManifestGets = async (digest: string): Promise<number> =>
    (await registry.loggedRequests()).filter((r) => r.method === 'GET' && r.path.includes(`/manifests/${digest}`)).length
  const metric = async (ferry: FerryProcess, pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`${ferry.url}/metrics`)).text()
    return Number(pattern.exec(text)?.[1] ?? 0)
  }
  const fillsInFlight = async (ferry: FerryProcess): Promise<number> => {
    const text = await (await fetch(`${ferry.url}/metrics`)).text()
    return Number(/^ferry_mirror_blob_fills_in_flight (\d+)/m.exec(text)?.[1] ?? 0)
  }
  const pull = async (ferry: FerryProcess, upstream: string, digest: string): Promise<string> => {
    const response = await fetch(`${ferry.url}/v2/${upstream}/team/app/blobs/${digest}`)
    if (response.status !== 200) return `status ${response.status}: ${await response.text()}`
    return sha256(Buffer.from(await response.arrayBuffer()))
  }

  /** S3 requests that write (a blob, an upload session, a link), per replica. */
  const s3Writes = async (ferry: FerryProcess): Promise<number> => {
    const text = await (await fetch(`${ferry.url}/metrics`)).text()
    const writes =
      /^ferry_storage_s3_requests_total\{operation="(?:PutObject|CreateMultipartUpload|UploadPart|CompleteMultipartUpload|CopyObject|DeleteObject)"\} (\d+)/gm
    return [...text.matchAll(writes)].reduce((sum, m) => sum + Number(m[1]), 0)
  }

  t.test('32 concurrent cold pulls over three replicas: one upstream fetch, every body byte-exact', async (t) => {
    const writesBefore = await Promise.all(trio.map(s3Writes))
    const pulls = Array.from({ length: 32 }, (_, i) => pull(trio[i % 3]!, 'shared.test', shared.digest))
    await gates['shared.test']!.holding
    // Every replica has its fill running (the holder's from the upstream, the others' from it).
    await eventually(async () => (await Promise.all(trio.map(fillsInFlight))).every((n) => n === 1), { message: 'a fill on each replica' })
    gates['shared.test']!.release()
    const digests = await Promise.all(pulls)
    t.same(new Set(digests), new Set([shared.digest]), 'all 32 bodies match the digest')
    t.equal(await upstreamBlobGets(shared.digest), 1, 'the upstream served the blob once')
    const received = /^ferry_upstream_received_bytes_total\{upstream="shared\.test"\} (\d+)/m
    const counted = await Promise.all(trio.map((r) => metric(r, received)))
    t.equal(
      counted.reduce((a, b) => a + b, 0),
      shared.size,
      'upstream bytes are counted once, by the replica that fetched them',
    )
    // The replicas that streamed the holder's fill wrote nothing to the bucket: no session, no blob.
    await eventually(async () => (await Promise.all(trio.map(fillsInFlight))).every((n) => n === 0), { message: 'every fill settled' })
    const writes = (await Promise.all(trio.map(s3Writes))).map((n, i) => n - writesBefore[i]!)
    const holder = counted.findIndex((bytes) => bytes > 0)
    t.ok(writes[holder]! > 0, 'the lease holder wrote the blob')
    t.same(
      writes.filter((_, i) => i !== holder),
      [0, 0],
      'the followers made no S3 write',
    )
    t.equal(await pull(trio[1]!, 'shared.test', shared.digest), shared.digest, 'a later pull is served from the bucket')
    t.equal(await upstreamBlobGets(shared.digest), 1)
    t.notMatch(trio.map((r) => r.logs()).join('\n'), /never-logged/, 'the Redis password is in no log line')
  })

  t.test('concurrent cold manifest GETs by digest over three replicas: one upstream fetch', async (t) => {
    const get = async (ferry: FerryProcess): Promise<string> => {
      const response = await fetch(`${ferry.url}/v2/manifest.test/team/app/manifests/${image.manifest.digest}`, {
        headers: { accept: image.manifest.mediaType },
      })
      return response.status === 200
        ? sha256(Buffer.from(await response.arrayBuffer()))
        : `status ${response.status}: ${await response.text()}`
    }
    const gets = trio.flatMap((ferry) => [get(ferry), get(ferry), get(ferry)])
    await gates['manifest.test']!.holding
    const misses = /^ferry_mirror_cache_lookups_total\{kind="manifest",result="miss"\} (\d+)/m
    // Every replica has missed it (the holder fetches; the others wait on its lease).
    await eventually(async () => (await Promise.all(trio.map((r) => metric(r, misses)))).every((n) => n >= 1), {
      message: 'a manifest miss on each replica',
    })
    gates['manifest.test']!.release()
    t.same(new Set(await Promise.all(gets)), new Set([image.manifest.digest]), 'every replica serves the exact manifest')
    t.equal(await upstreamManifestGets(image.manifest.digest), 1, 'the upstream served the manifest once')
  })

  t.test('concurrent cold manifest GETs by tag over three replicas: one upstream tag resolution', async (t) => {
    const get = async (ferry: FerryProcess): Promise<string> => {
      const response = await fetch(`${ferry.url}/v2/tag.test/team/app/manifests/v1`, { headers: { accept: '*/*' } })
      return response.status === 200 ? sha256(Buffer.from(await response.arrayBuffer())) : `status ${response.status}`
    }
    const gets = trio.flatMap((ferry) => [get(ferry), get(ferry)])
    await gates['tag.test']!.holding
    const misses = /^ferry_mirror_cache_lookups_total\{kind="tag",result="miss"\} (\d+)/m
    // Every replica has missed the tag (the holder resolves it; the others wait on its lease).
    await eventually(async () => (await Promise.all(trio.map((r) => metric(r, misses)))).every((n) => n >= 1), {
      message: 'a tag miss on each replica',
    })
    gates['tag.test']!.release()
    t.same(new Set(await Promise.all(gets)), new Set([image.manifest.digest]), 'every replica serves the tagged manifest')
    const tagRequests = (await registry.loggedRequests()).filter((r) => r.method !== 'PUT' && r.path.includes('/team/app/manifests/v1'))
    t.equal(tagRequests.length, 1, 'the upstream was asked for the tag once')
  })

  t.test('a filling replica killed mid-fill is taken over; pulls on the others complete', async (t) => {
    const pulls = trio.map((ferry, i) =>
      Array.from({ length: 4 }, () => pull(ferry, 'killed.test', killed.digest).catch((err: unknown) => `failed on ${i}: ${String(err)}`)),
    )
    await gates['killed.test']!.holding
    await eventually(async () => (await Promise.all(trio.map(fillsInFlight))).every((n) => n === 1), { message: 'a fill on each replica' })
    const leases = await redis.keys('ferry:fill:*')
    t.equal(leases.length, 1, 'one lease')
    const holderUrl = (await redis.get(leases[0]!))!.split(' ')[1]
    const victim = trio.findIndex((r) => r.url === holderUrl)
    t.not(victim, -1, 'the lease names a replica')
    // The peer endpoint streams the fill only to a caller with the lease's token.
    const [token] = (await redis.get(leases[0]!))!.split(' ')
    const peer = `${holderUrl}/ferry/v1/peer/fills?key=${encodeURIComponent(leases[0]!.slice('ferry:fill:'.length))}`
    t.equal((await fetch(peer)).status, 404, 'no token: 404')
    t.equal((await fetch(peer, { headers: { authorization: `Bearer ${'0'.repeat(32)}` } })).status, 404, 'a wrong token: 404')
    const allowed = await fetch(peer, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(60_000) })
    t.equal(allowed.status, 200, "the lease's token: the fill")
    await allowed.body?.cancel()
    process.kill(trio[victim]!.pid, 'SIGKILL')
    gates['killed.test']!.release()
    for (const [i, group] of pulls.entries()) {
      const digests = await Promise.all(group)
      if (i === victim) t.equal(digests.length, 4, 'pulls on the killed replica end (failed or not)')
      else t.same(digests, [killed.digest, killed.digest, killed.digest, killed.digest], `every pull on replica ${i} completes byte-exact`)
    }
    // The dead replica's download and the survivor's takeover (from where the fill stood).
    t.equal(await upstreamBlobGets(killed.digest), 2, 'one fetch by the dead filler, one by the replica that took over')
    const survivors = trio.filter((_, i) => i !== victim)
    for (const ferry of survivors) t.equal(await pull(ferry, 'killed.test', killed.digest), killed.digest, 'served from the bucket')
    trio.splice(victim, 1)
  })

  t.test('pushes, pulls, tag moves and deletes spread over the replicas converge', async (t) => {
    const a = trio[0]!
    const b = trio[1]!
    const one = await seedImage(a.url, 'local/app', 'v1', { auth: pusher })
    const two = await seedImage(b.url, 'local/app', 'other', { auth: pusher })
    const digestOf = async (ferry: FerryProcess, reference: string): Promise<string | number> => {
      const response = await fetch(`${ferry.url}/v2/local/app/manifests/${reference}`, { headers: { accept: one.manifest.mediaType } })
      const body = Buffer.from(await response.arrayBuffer())
      return response.status === 200 ? sha256(body) : response.status
    }
    await eventually(async () => (await digestOf(b, 'v1')) === one.manifest.digest, { message: 'v1 pushed on a, seen on b' })
    const layer = one.layers[0]!
    const body = await fetch(`${b.url}/v2/local/app/blobs/${layer.digest}`)
    t.equal(sha256(Buffer.from(await body.arrayBuffer())), layer.digest, 'a blob pushed on a is pulled from b')
    // Move v1 on b to the other image; a sees the move once its metadata TTL passed.
    await pushManifest(b.url, 'local/app', 'v1', two.manifest.bytes, two.manifest.mediaType, pusher)
    await eventually(async () => (await digestOf(a, 'v1')) === two.manifest.digest, { message: 'the tag move seen on a' })
    const deleted = await fetch(`${a.url}/v2/local/app/manifests/${one.manifest.digest}`, {
      method: 'DELETE',
      headers: { authorization: basic(pusher.username, pusher.password) },
    })
    t.equal(deleted.status, 202)
    await eventually(async () => (await digestOf(b, one.manifest.digest)) === 404, { message: 'the delete seen on b' })
    const extra = randomBytes(4096)
    t.equal(await pushBlob(b.url, 'local/app', extra, pusher), sha256(extra))
    t.equal(await digestOf(b, 'v1'), two.manifest.digest)
  })

  t.test('without Redis each replica fetches a cold blob once (as the README says)', async (t) => {
    const pair = await uncoordinated
    const pulls = pair.flatMap((ferry) => [0, 1, 2].map(() => pull(ferry, 'solo.test', solo.digest)))
    await gates['solo.test']!.holding
    await eventually(async () => (await Promise.all(pair.map(fillsInFlight))).every((n) => n === 1), { message: 'a fill on each replica' })
    gates['solo.test']!.release()
    t.same(new Set(await Promise.all(pulls)), new Set([solo.digest]))
    t.equal(await upstreamBlobGets(solo.digest), 2, 'one upstream fetch per replica')
  })
}
