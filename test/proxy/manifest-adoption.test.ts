// A manifest pushed into a mirrored name may reference blobs the client never uploaded (its blob
// HEADs answered from the upstream): Ferry copies those in. The manifest is the client's, so one
// PUT must cost a bounded number of upstream requests however many digests it lists.
import { createHash, randomBytes } from 'node:crypto'
import pino from 'pino'
import t, { type Test } from 'tap'
import type { Digest } from '../../src/core/digest.js'
import type { RepositoryName } from '../../src/core/reference.js'
import { Metrics } from '../../src/observability/metrics.js'
import { defaultAdoptionLimits } from '../../src/proxy/adoption-limits.js'
import { MirrorContext } from '../../src/proxy/mirror-context.js'
import { MirrorRegistry } from '../../src/proxy/mirror-registry.js'
import { MemoryDriver } from '../../src/storage/driver/memory.js'
import { BlockBudget, defaultBlockBudgetBytes } from '../../src/transfer/shared-blocks.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js'
import { routeTable } from '../../src/upstream/routing.js'
import { startDistribution, distributionUnavailable, type Distribution, type AccessLogEntry } from '../helpers/distribution.js'
import { basic, htpasswdLine } from '../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from '../helpers/mirror-server.js'
import { layerMediaType, seedImage, sha256 } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

const seeder = { username: 'seeder', password: 'seeder-pw' }
const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
const ociManifest = 'application/vnd.oci.image.manifest.v1+json'
/** The existence checks Ferry runs at once (defaultAdoptionLimits.checks): the most a refused PUT may cost. */
const checks = 8

async function setup(t: Test): Promise<{ upstream: Distribution; ferry: MirrorServer }> {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer(
    {
      upstreams: [upstreamConfig('gcr.io', upstream.url)],
      defaultUpstream: 'gcr.io',
      namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
    },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
        anonymousPull: ['**'],
      },
    },
  )
  t.teardown(() => ferry.close())
  return { upstream, ferry }
}

function blobRequests(requests: AccessLogEntry[], method: string): number {
  return requests.filter((r) => r.method === method && r.path.includes('/blobs/')).length
}

function manifestOf(config: { digest: string; size: number }, layers: Array<{ digest: string; size: number }>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: layerMediaType, digest: l.digest, size: l.size })),
    }),
  )
}

function randomDigest(): string {
  return `sha256:${createHash('sha256').update(randomBytes(16)).digest('hex')}`
}

async function put(
  ferry: MirrorServer,
  repo: string,
  tag: string,
  bytes: Buffer,
): Promise<{ status: number; code?: string; detail?: string }> {
  const res = await fetch(`${ferry.url}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': ociManifest, authorization: basic(seeder.username, seeder.password) },
    body: bytes,
  })
  if (res.status === 201) {
    await res.body?.cancel()
    return { status: res.status }
  }
  const error = ((await res.json()) as { errors: Array<{ code: string; detail?: string }> }).errors[0]
  return { status: res.status, ...error }
}

// On S3 (s3rver) the 10,000 existence checks take minutes, two HEADs each: the S3 speed work of
// #14 owns that, so the case runs on the filesystem only until then.
const manyDigestsSkip = process.env.FERRY_TEST_STORAGE === 's3' && 'S3: 10,000 existence checks take minutes on s3rver (#14)'

t.test('10,000 random layer digests: refused at once, at most a handful of upstream requests', { skip: manyDigestsSkip }, async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'big/app', 'v1')
  const layers = Array.from({ length: 10_000 }, () => ({ digest: randomDigest(), size: 1 + Math.floor(Math.random() * 1e6) }))
  const manifest = manifestOf(image.config, layers)
  t.ok(manifest.length > 1_400_000, `a ${(manifest.length / 1e6).toFixed(1)} MB manifest`)
  const before = await upstream.loggedRequests()

  const answer = await put(ferry, 'test-namespace/big/app', 'x', manifest)
  t.equal(answer.status, 400)
  t.equal(answer.code, 'MANIFEST_BLOB_UNKNOWN')

  const after = await upstream.loggedRequests()
  t.ok(after.length - before.length <= checks, `the upstream saw ${after.length - before.length} requests`)
  t.equal(blobRequests(after, 'GET') - blobRequests(before, 'GET'), 0, 'nothing was downloaded')
})

t.test('under the count cap: the first digest the upstream lacks stops the checks, nothing is copied', async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'some/app', 'v1', { layers: [randomBytes(2048), randomBytes(2048)] })
  const random = Array.from({ length: 500 }, () => ({ digest: randomDigest(), size: 1000 }))
  // Real layers first, then many the upstream has never heard of.
  const manifest = manifestOf(image.config, [...image.layers, ...random])
  const before = await upstream.loggedRequests()

  const answer = await put(ferry, 'test-namespace/some/app', 'x', manifest)
  t.equal(answer.status, 400)
  t.equal(answer.code, 'MANIFEST_BLOB_UNKNOWN')
  t.match(answer.detail, /sha256:[0-9a-f]{64}/, 'the answer names a missing digest')

  const after = await upstream.loggedRequests()
  const heads = blobRequests(after, 'HEAD') - blobRequests(before, 'HEAD')
  t.ok(heads <= 3 + checks, `${heads} blob HEADs upstream: the existence checks stopped early`)
  t.equal(blobRequests(after, 'GET') - blobRequests(before, 'GET'), 0, 'nothing was copied before every blob was known')

  const stored = await fetch(`${ferry.url}/v2/test-namespace/some/app/blobs/${image.layers[0]!.digest}`, { method: 'HEAD' })
  t.equal(stored.status, 200, 'the HEAD still answers from the upstream')
  const manifestAfter = await fetch(`${ferry.url}/v2/test-namespace/some/app/manifests/x`, { method: 'HEAD' })
  t.equal(manifestAfter.status, 404, 'the manifest was not stored')
})

t.test('a legitimate adoption of many blobs still works, each copied once', async (t) => {
  const { upstream, ferry } = await setup(t)
  const image = await seedImage(upstream.url, 'many/app', 'v1', { layers: Array.from({ length: 20 }, () => randomBytes(10_000)) })
  const answer = await put(ferry, 'test-namespace/many/app', 'seeded', image.manifest.bytes)
  t.equal(answer.status, 201, 'accepted: the skipped blobs were brought in')

  const requests = await upstream.loggedRequests()
  for (const blob of [image.config, ...image.layers]) {
    t.equal(
      requests.filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${blob.digest}`)).length,
      1,
      `${blob.digest.slice(0, 19)} fetched once`,
    )
  }
  await upstream.stop()
  for (const blob of [image.config, ...image.layers]) {
    const res = await fetch(`${ferry.url}/v2/test-namespace/many/app/blobs/${blob.digest}`)
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest, `${blob.digest.slice(0, 19)} is local now`)
  }
  const manifest = await fetch(`${ferry.url}/v2/test-namespace/many/app/manifests/seeded`, { headers: { accept: ociManifest } })
  t.equal(manifest.status, 200, 'the pushed manifest is served with the upstream gone')
  await manifest.body?.cancel()
})

t.test('the byte cap: blobs the upstream has, but more bytes than one push may copy, are refused before any download', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const image = await seedImage(upstream.url, 'heavy/app', 'v1', { layers: [randomBytes(20_000), randomBytes(20_000)] })
  // The mirror composed by hand around the real storage and upstream, with a small byte cap.
  const driver = new MemoryDriver()
  const local = new LocalRegistry(driver)
  const cache = new LocalRegistry(driver, { storagePrefix: '_cache' })
  const client = new RegistryUpstream({ name: 'gcr.io', url: upstream.url })
  t.teardown(() => client.close())
  const routes = {
    table: routeTable({ upstreams: [{ name: 'gcr.io', url: upstream.url, aliases: [] }], defaultUpstream: 'gcr.io', namespaces: [] }),
    upstreams: new Map([['gcr.io', { upstream: client, tagTtl: 60_000 }]]),
  }
  const limits = { ...defaultAdoptionLimits, bytes: 30_000 }
  const budget = new BlockBudget(defaultBlockBudgetBytes)
  const context = new MirrorContext(cache, () => routes, new Metrics(), pino({ level: 'silent' }), budget, Date.now, limits)
  const repository = new MirrorRegistry(local, context).repository('heavy/app' as RepositoryName)
  const before = await upstream.loggedRequests()

  await t.rejects(repository.manifests.put(image.manifest.bytes, image.manifest.mediaType), {
    code: 'MANIFEST_BLOB_UNKNOWN',
    message: /at most 30000 are copied/,
  })
  const after = await upstream.loggedRequests()
  t.equal(blobRequests(after, 'GET') - blobRequests(before, 'GET'), 0, 'nothing was downloaded')
  t.equal(blobRequests(after, 'HEAD') - blobRequests(before, 'HEAD'), 3, 'one HEAD per missing blob')
  t.equal(
    await local.repository('heavy/app' as RepositoryName).blobs.stat(image.layers[0]!.digest as Digest),
    undefined,
    'nothing was copied',
  )
})
