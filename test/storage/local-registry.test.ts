// Registry-level behaviour that HTTP tests cannot easily reach: sessions surviving a restart,
// the abandoned-upload purge, and verify-then-commit leaving nothing behind.
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import type { Digest } from '../../src/core/digest.js'
import type { RepositoryName } from '../../src/core/reference.js'
import type { StorageDriver } from '../../src/storage/driver/driver.js'
import { FilesystemDriver } from '../../src/storage/driver/filesystem.js'
import { MemoryDriver } from '../../src/storage/driver/memory.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'

const name = 'team/app' as RepositoryName
const sha = (bytes: Buffer, alg = 'sha256') => `${alg}:${createHash(alg).update(bytes).digest('hex')}` as Digest

async function withDrivers(t: Test, body: (t: Test, driver: StorageDriver, root?: string) => Promise<void>) {
  await t.test('memory driver', (t) => body(t, new MemoryDriver()))
  await t.test('filesystem driver', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-registry-'))
    t.teardown(() => rm(root, { recursive: true, force: true }))
    await body(t, new FilesystemDriver(root), root)
  })
}

t.test('an upload session survives a restart and its hash is rebuilt from storage', (t) =>
  withDrivers(t, async (t, driver) => {
    const data = Buffer.from('first half|second half')
    const before = new LocalRegistry(driver).repository(name).blobs.uploads
    const session = await before.start()
    await before.append(session.id, Readable.from([data.subarray(0, 11)]), { offset: 0, length: 11 })

    const after = new LocalRegistry(driver).repository(name).blobs.uploads // a new process: no hash in memory
    t.equal((await after.status(session.id)).size, 11)
    await after.append(session.id, Readable.from([data.subarray(11)]), { offset: 11 })
    const info = await after.complete(session.id, sha(data))
    t.same(info, { digest: sha(data), size: data.length })
    await t.rejects(after.status(session.id), { code: 'BLOB_UPLOAD_UNKNOWN' }, 'a finished session is gone')
  }),
)

t.test('sha512 uploads are verified with sha512', (t) =>
  withDrivers(t, async (t, driver) => {
    const blobs = new LocalRegistry(driver).repository(name).blobs
    const data = Buffer.from('sha512 content')
    const session = await blobs.uploads.start()
    await blobs.uploads.complete(session.id, sha(data, 'sha512'), Readable.from([data]))
    t.same(await blobs.stat(sha(data, 'sha512')), { digest: sha(data, 'sha512'), size: data.length })
  }),
)

t.test('a digest mismatch stores nothing and discards the session', (t) =>
  withDrivers(t, async (t, driver, root) => {
    const blobs = new LocalRegistry(driver).repository(name).blobs
    const session = await blobs.uploads.start()
    const wrong = sha(Buffer.from('something else'))
    await t.rejects(blobs.uploads.complete(session.id, wrong, Readable.from([Buffer.from('content')])), { code: 'DIGEST_INVALID' })
    t.equal(await blobs.stat(wrong), undefined)
    t.equal(await blobs.stat(sha(Buffer.from('content'))), undefined)
    await t.rejects(blobs.uploads.status(session.id), { code: 'BLOB_UPLOAD_UNKNOWN' })
    if (root) t.same(await readdir(join(root, 'blobs')).catch(() => []), [], 'no blob files on disk')
  }),
)

t.test('onVerified: called once the bytes are written and match, before the blob is committed; never on a mismatch', (t) =>
  withDrivers(t, async (t, driver) => {
    const blobs = new LocalRegistry(driver).repository(name).blobs
    const data = Buffer.from('verified before the commit')
    const session = await blobs.uploads.start()
    let committed = false
    const seen: boolean[] = []
    const completed = blobs.uploads.complete(session.id, sha(data), Readable.from([data]), {
      onVerified: () => seen.push(committed),
    })
    await completed.then(() => (committed = true))
    t.same(seen, [false], 'called once, before complete() resolved')
    t.same(await blobs.stat(sha(data)), { digest: sha(data), size: data.length }, 'then committed')

    const other = await blobs.uploads.start()
    let called = false
    const wrong = sha(Buffer.from('something else'))
    await t.rejects(blobs.uploads.complete(other.id, wrong, Readable.from([data]), { onVerified: () => (called = true) }), {
      code: 'DIGEST_INVALID',
    })
    t.notOk(called, 'not called when the digest does not match')
  }),
)

t.test('a chunk at the wrong offset is refused with 416 and the session stays usable', (t) =>
  withDrivers(t, async (t, driver) => {
    const uploads = new LocalRegistry(driver).repository(name).blobs.uploads
    const session = await uploads.start()
    await t.rejects(uploads.append(session.id, Readable.from([Buffer.from('xy')]), { offset: 5 }), { code: 'RANGE_INVALID', status: 416 })
    const status = await uploads.append(session.id, Readable.from([Buffer.from('xy')]), { offset: 0 })
    t.equal(status.size, 2)
  }),
)

t.test('a body shorter or longer than declared fails with SIZE_INVALID', (t) =>
  withDrivers(t, async (t, driver) => {
    const uploads = new LocalRegistry(driver).repository(name).blobs.uploads
    const session = await uploads.start()
    await t.rejects(uploads.append(session.id, Readable.from([Buffer.from('abc')]), { length: 2 }), { code: 'SIZE_INVALID' })
    await t.rejects(uploads.append(session.id, Readable.from([Buffer.from('abc')]), { length: 4 }), { code: 'SIZE_INVALID' })
  }),
)

t.test('purgeUploads removes only sessions idle for longer than the cutoff', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-purge-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const registry = new LocalRegistry(new FilesystemDriver(root))
  const uploads = registry.repository(name).blobs.uploads
  const stale = await uploads.start()
  const fresh = await uploads.start()
  const old = new Date(Date.now() - 3 * 3600_000)
  await utimes(join(root, 'repositories', name, '_uploads', stale.id, 'data'), old, old)

  t.equal(await registry.purgeUploads(new Date(Date.now() - 3600_000)), 1)
  await t.rejects(uploads.status(stale.id), { code: 'BLOB_UPLOAD_UNKNOWN' })
  t.equal((await uploads.status(fresh.id)).size, 0)
})

t.test('the purge leaves alone a session a request is writing to, however old its data', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-purge-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  const registry = new LocalRegistry(new FilesystemDriver(root))
  const uploads = registry.repository(name).blobs.uploads
  const session = await uploads.start()
  await uploads.append(session.id, Readable.from([Buffer.from('first|')]), { offset: 0 })
  const old = new Date(Date.now() - 3 * 3600_000)
  await utimes(join(root, 'repositories', name, '_uploads', session.id, 'data'), old, old)

  // A client resumes the session: the append holds the session and waits for the body's bytes,
  // so the data file is still old when the purge runs.
  let bodyPulled!: () => void
  const pulled = new Promise<void>((resolve) => (bodyPulled = resolve))
  const body = new Readable({ read: () => bodyPulled() })
  const appending = uploads.append(session.id, body, { offset: 6 })
  await pulled

  t.equal(await registry.purgeUploads(new Date(Date.now() - 3600_000)), 0, 'a session in use is not abandoned')
  body.push(Buffer.from('second'))
  body.push(null)
  t.equal((await appending).size, 12)
  const data = Buffer.from('first|second')
  t.same(await uploads.complete(session.id, sha(data)), { digest: sha(data), size: 12 }, 'every acknowledged byte is there')
})

t.test('a session resumed while the purge removes it is found gone, never written into', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-purge-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  // The real driver, with the purge's delete held until the test lets it go.
  let deleteReached!: () => void
  const reached = new Promise<void>((resolve) => (deleteReached = resolve))
  let releaseDelete!: () => void
  const released = new Promise<void>((resolve) => (releaseDelete = resolve))
  class HeldDeletes extends FilesystemDriver {
    override async delete(path: string): Promise<void> {
      if (path.includes('/_uploads/')) {
        deleteReached()
        await released
      }
      return super.delete(path)
    }
  }
  const registry = new LocalRegistry(new HeldDeletes(root))
  const uploads = registry.repository(name).blobs.uploads
  const session = await uploads.start()
  await uploads.append(session.id, Readable.from([Buffer.from('first|')]), { offset: 0 })
  const dataPath = join(root, 'repositories', name, '_uploads', session.id, 'data')
  const old = new Date(Date.now() - 3 * 3600_000)
  await utimes(dataPath, old, old)

  const purging = registry.purgeUploads(new Date(Date.now() - 3600_000))
  await reached
  // Queued behind the purge the moment it is called.
  const appending = uploads.append(session.id, Readable.from([Buffer.from('second')]), { offset: 6 })
  releaseDelete()
  t.equal(await purging, 1)
  await t.rejects(appending, { code: 'BLOB_UPLOAD_UNKNOWN' }, 'the client learns its session is gone and starts over')
  await t.rejects(stat(dataPath), { code: 'ENOENT' }, 'nothing was written into a half-deleted session')
})

t.test('catalog lists repositories with manifests, nested names included, in byte order', async (t) => {
  const registry = new LocalRegistry(new MemoryDriver())
  for (const repo of ['b', 'a/b/c', 'a']) {
    const r = registry.repository(repo as RepositoryName)
    const config = Buffer.from('{}')
    const session = await r.blobs.uploads.start()
    await r.blobs.uploads.complete(session.id, sha(config), Readable.from([config]))
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: 2 },
        layers: [],
      }),
    )
    await r.manifests.put(manifest, 'application/vnd.oci.image.manifest.v1+json')
  }
  await registry.repository('uploads/only' as RepositoryName).blobs.uploads.start()
  t.same((await registry.catalog({})).items, ['a', 'a/b/c', 'b'])
  t.same(await registry.catalog({ n: 1, last: 'a' }), { items: ['a/b/c'], next: 'a/b/c' })
})
