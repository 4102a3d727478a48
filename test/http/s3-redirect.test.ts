// storage.s3.redirect: a whole-blob GET answers 307 with a presigned URL of the store, which
// serves the exact bytes to a client without Ferry's credentials; HEAD and ranged GETs are
// answered by Ferry itself; and skopeo pulls an image through the redirects.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startMirrorServer } from '../helpers/mirror-server.js'
import { sha256, seedImage } from '../helpers/seed.js'
import { startS3Server } from '../helpers/s3-server.js'
import { asEditor, editor, teamAuth } from '../helpers/team-accounts.js'
import { missingTools, run } from '../helpers/tools.js'

const noSkopeo = missingTools('skopeo').length > 0 ? 'skopeo is not installed' : undefined

t.test('blob GETs redirect to the store, HEAD and ranges stay with Ferry', async (t) => {
  const s3 = await startS3Server()
  t.teardown(() => s3.close())
  const ferry = await startMirrorServer(
    { upstreams: [], defaultUpstream: undefined },
    {
      auth: await teamAuth(),
      configure: (config) => {
        config.storage = { ...config.storage, driver: 's3', s3: { ...config.storage.s3, ...s3.driverOptions(), redirectMs: 60_000 } }
      },
    },
  )
  t.teardown(() => ferry.close())
  const layer = Buffer.alloc(3 * 1024 * 1024, 7)
  const image = await seedImage(ferry.url, 'team-a/app', 'v1', { auth: editor, layers: [layer] })
  const digest = image.layers[0]!.digest
  const blobUrl = `${ferry.url}/v2/team-a/app/blobs/${digest}`

  const redirected = await fetch(blobUrl, { headers: { authorization: asEditor }, redirect: 'manual' })
  t.equal(redirected.status, 307, 'a whole-blob GET is redirected')
  const location = redirected.headers.get('location') ?? ''
  const store = new URL(s3.driverOptions().endpoint!)
  t.equal(new URL(location).host, store.host, 'to the store')
  t.match(location, /X-Amz-Signature=/, 'with a presigned URL')
  t.match(location, /X-Amz-Expires=60(&|$)/, 'valid for storage.s3.redirectExpiry')
  const fromStore = await fetch(location)
  t.equal(fromStore.status, 200, 'the store serves it without our credentials')
  t.equal(sha256(Buffer.from(await fromStore.arrayBuffer())), digest, 'byte-exact')

  const followed = await fetch(blobUrl, { headers: { authorization: asEditor } })
  t.equal(sha256(Buffer.from(await followed.arrayBuffer())), digest, 'a client following the redirect gets the blob')

  const head = await fetch(blobUrl, { method: 'HEAD', headers: { authorization: asEditor }, redirect: 'manual' })
  t.equal(head.status, 200, 'HEAD never redirects')
  t.equal(head.headers.get('content-length'), String(layer.length))
  const ranged = await fetch(blobUrl, { headers: { authorization: asEditor, range: 'bytes=10-19' }, redirect: 'manual' })
  t.equal(ranged.status, 206, 'a ranged GET is served by Ferry')
  t.same(Buffer.from(await ranged.arrayBuffer()), layer.subarray(10, 20))
  const anonymous = await fetch(blobUrl, { redirect: 'manual' })
  t.equal(anonymous.status, 401, 'no URL for a client that may not pull')
})

t.test('skopeo pulls through the redirects', { skip: noSkopeo }, async (t) => {
  const s3 = await startS3Server()
  t.teardown(() => s3.close())
  const ferry = await startMirrorServer(
    { upstreams: [], defaultUpstream: undefined },
    {
      auth: await teamAuth(),
      configure: (config) => {
        config.storage = { ...config.storage, driver: 's3', s3: { ...config.storage.s3, ...s3.driverOptions(), redirectMs: 60_000 } }
      },
    },
  )
  t.teardown(() => ferry.close())
  const image = await seedImage(ferry.url, 'team-a/app', 'v1', { auth: editor, layers: [Buffer.alloc(1024 * 1024, 3)] })
  const dir = await mkdtemp(join(tmpdir(), 'ferry-redirect-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await run('skopeo', [
    '--insecure-policy',
    'copy',
    '--src-tls-verify=false',
    '--src-creds',
    `${editor.username}:${editor.password}`,
    `docker://${ferry.host}/team-a/app:v1`,
    `dir:${dir}`,
  ])
  const layerHex = image.layers[0]!.digest.slice('sha256:'.length)
  t.ok((await readdir(dir)).includes(layerHex), 'the layer arrived')
  t.equal(sha256(await readFile(join(dir, layerHex))), image.layers[0]!.digest, 'byte-exact')
})
