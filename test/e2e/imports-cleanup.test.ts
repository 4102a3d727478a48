// What server-side imports leave behind, through the real endpoint of the composed server: a
// completed import empties `<namespace>/ferry-bundle-staging` (the images keep every blob), a failed one keeps its staged blobs for the next attempt, and
// records of finished imports older than `imports.retention` are pruned but the newest
// `imports.keep` (and any import still running).
import { randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startAuthServer } from '../helpers/auth-server.js'
import { eventually } from '../helpers/eventually.js'
import { buildImage, gcLayout, initLayout, readBlob, sha256, tagDescriptor, type ImageManifest } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const basic = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`
const day = 86_400_000

const missing = missingTools('skopeo', 'umoci', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `import cleanup e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-import-cleanup-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'app', { layerSizes: [256 * 1024, 64 * 1024], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const image = await tagDescriptor(layout, 'app')
  const manifest = JSON.parse((await readBlob(layout, image.digest)).toString('utf8')) as ImageManifest
  const bundle = join(work, 'app.tar')
  await run('skopeo', ['--insecure-policy', 'copy', '--preserve-digests', `oci:${layout}:app`, `oci-archive:${bundle}:gcr.io/x/app:1.0`])
  const bytes = await readFile(bundle)

  const server = await startAuthServer(t, {
    users: { admin: 'admin-pw' },
    auth: { roles: [{ subjects: ['admin'], namespaces: ['**'], role: 'admin' }] },
    configure: (config) => {
      config.imports.keep = 1
    },
  })
  const { url } = server

  // Records as an earlier run left them in storage: two finished long ago, one finished yesterday, one never finished.
  const records = join(server.root, '_imports')
  await mkdir(records, { recursive: true })
  const record = async (state: string, age: number): Promise<string> => {
    const id = randomUUID()
    const at = new Date(Date.now() - age).toISOString()
    const status = { id, namespace: 'old', source: 'body', state, bytesRead: 0, bytesWritten: 0, imagesDone: 0, imagesTotal: 0, images: [] }
    await writeFile(join(records, `${id}.json`), JSON.stringify({ ...status, user: 'admin', createdAt: at, updatedAt: at }))
    return id
  }
  const oldDone = await record('done', 10 * day)
  const oldFailed = await record('failed', 9 * day)
  const yesterday = await record('done', day)
  const running = await record('reading', 10 * day)

  const importOf = async (body: Buffer, namespace: string): Promise<{ state: string; error?: string }> => {
    const response = await fetch(`${url}/ferry/v1/imports?namespace=${namespace}`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/octet-stream' },
      body,
    })
    const location = new URL(response.headers.get('location') ?? '', url)
    return eventually(
      async () => {
        const status = (await (await fetch(location, { headers: { authorization: basic } })).json()) as { state: string; error?: string }
        return ['done', 'partial', 'failed', 'cancelled'].includes(status.state) ? status : undefined
      },
      { timeoutMs: 60_000, message: `the import into ${namespace} finished` },
    )
  }
  const staged = async (namespace: string, digest: string): Promise<number> =>
    (await fetch(`${url}/v2/${namespace}/ferry-bundle-staging/blobs/${digest}`, { method: 'HEAD', headers: { authorization: basic } }))
      .status

  await t.test('a completed import empties the staging repository; the image keeps every blob', async (t) => {
    const status = await importOf(bytes, 'clean')
    t.equal(status.state, 'done', status.error ?? '')
    for (const blob of [manifest.config, ...manifest.layers]) {
      t.equal(await staged('clean', blob.digest), 404, `${blob.digest.slice(7, 19)} unlinked from staging`)
      const response = await fetch(`${url}/v2/clean/x/app/blobs/${blob.digest}`, { headers: { authorization: basic } })
      t.equal(sha256(Buffer.from(await response.arrayBuffer())), blob.digest, 'and still served from the image')
    }
    const pulled = await fetch(`${url}/v2/clean/x/app/manifests/1.0`, { headers: { authorization: basic, accept: image.mediaType } })
    t.equal(pulled.status, 200)
  })

  await t.test('a failed import keeps what it staged; the import that completes it empties it', async (t) => {
    const cut = await importOf(bytes.subarray(0, Math.floor(bytes.length * 0.8)), 'kept')
    t.equal(cut.state, 'failed')
    const kept = await Promise.all([manifest.config, ...manifest.layers].map((blob) => staged('kept', blob.digest)))
    t.ok(kept.includes(200), `what was stored before the cut stays in staging for the next attempt (${kept.join(', ')})`)
    const again = await importOf(bytes, 'kept')
    t.equal(again.state, 'done', again.error ?? '')
    const after = await Promise.all([manifest.config, ...manifest.layers].map((blob) => staged('kept', blob.digest)))
    t.same(
      after,
      after.map(() => 404),
      'every blob unlinked from staging',
    )
  })

  await t.test('finished records past the retention are pruned, but the newest and the unfinished', async (t) => {
    const listed = (await (await fetch(`${url}/ferry/v1/imports`, { headers: { authorization: basic } })).json()) as {
      imports: Array<{ id: string; namespace: string }>
    }
    const ids = listed.imports.map((i) => i.id)
    t.notOk(ids.includes(oldDone), 'a done import of 10 days ago is gone')
    t.notOk(ids.includes(oldFailed), 'and a failed one of 9 days ago')
    t.ok(ids.includes(yesterday), "yesterday's stays (within 7 days, though not the newest)")
    t.ok(ids.includes(running), 'an import that never finished is not pruned')
    t.equal(listed.imports.filter((i) => i.namespace === 'clean' || i.namespace === 'kept').length, 3, "this run's imports stay")
    const files = await readdir(records)
    t.notOk(files.includes(`${oldDone}.json`), 'its record is deleted from storage')
  })
}
