// Uploads tell ComposeOptions.uploadWatch when they start and end taking bytes in (serve gives
// V8's old generation room while two or more run at once, cli/old-generation.ts): a monolithic
// upload, each PATCH of a chunked one, failed ones too, and nothing for a pull. A bulk import tells
// ComposeOptions.importWatch instead, once from its start to its end (serve gives it more room).
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startAuthServer } from '../helpers/auth-server.js'
import { ociMediaTypes, writeBlob } from '../helpers/oci-layout.js'
import { run } from '../helpers/tools.js'

const MiB = 1024 * 1024
const authorization = `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}`

t.test('uploads begin and end once each, whatever their outcome; downloads are not uploads', async (t) => {
  let active = 0
  let begun = 0
  const uploadWatch = {
    begin: () => {
      begun++
      active++
    },
    end: () => void active--,
  }
  const server = await startAuthServer(t, { users: { pusher: 'pusher-pw' }, uploadWatch })
  const start = async (): Promise<string> => {
    const response = await fetch(`${server.url}/v2/watch/me/blobs/uploads/`, { method: 'POST', headers: { authorization } })
    t.equal(response.status, 202)
    return new URL(response.headers.get('location')!, server.url).href
  }
  const withDigest = (location: string, bytes: Buffer): string => {
    const url = new URL(location)
    url.searchParams.set('digest', `sha256:${createHash('sha256').update(bytes).digest('hex')}`)
    return url.href
  }

  const blobs = [randomBytes(3 * MiB), randomBytes(2 * MiB), randomBytes(MiB)]
  const puts = await Promise.all(
    blobs.map(
      async (bytes) => (await fetch(withDigest(await start(), bytes), { method: 'PUT', headers: { authorization }, body: bytes })).status,
    ),
  )
  t.same(puts, [201, 201, 201])
  t.equal(begun, 3, 'three monolithic uploads')
  t.equal(active, 0, 'all ended')

  const chunked = randomBytes(2 * MiB + 17)
  let location = await start()
  for (const [from, to] of [
    [0, MiB],
    [MiB, chunked.length],
  ] as const) {
    const patch = await fetch(location, {
      method: 'PATCH',
      headers: { authorization, 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` },
      body: chunked.subarray(from, to),
    })
    t.equal(patch.status, 202)
    location = new URL(patch.headers.get('location')!, server.url).href
  }
  t.equal((await fetch(withDigest(location, chunked), { method: 'PUT', headers: { authorization } })).status, 201)
  t.equal(begun, 5, 'each PATCH is one; the closing PUT brings no bytes')
  t.equal(active, 0)

  const wrong = randomBytes(MiB)
  const refused = await fetch(withDigest(await start(), randomBytes(10)), { method: 'PUT', headers: { authorization }, body: wrong })
  t.equal(refused.status, 400, 'a body that does not match its digest')
  t.equal(active, 0, 'a failed upload ends too')

  const before = begun
  const digest = `sha256:${createHash('sha256').update(blobs[0]!).digest('hex')}`
  const pulled = await fetch(`${server.url}/v2/watch/me/blobs/${digest}`, { headers: { authorization } })
  t.equal(Buffer.from(await pulled.arrayBuffer()).length, blobs[0]!.length)
  t.equal(begun, before, 'a download: none')
})

t.test('a bulk import tells importWatch once, from its start to its end, and is no upload', async (t) => {
  const told: string[] = []
  const watch = (name: string) => ({ begin: () => void told.push(`${name} begin`), end: () => void told.push(`${name} end`) })
  const server = await startAuthServer(t, {
    users: { pusher: 'pusher-pw' },
    auth: { roles: [{ subjects: ['pusher'], namespaces: ['**'], role: 'admin' }] },
    uploadWatch: watch('upload'),
    importWatch: watch('import'),
  })
  const layout = join(server.dir, 'layout')
  await mkdir(join(layout, 'blobs', 'sha256'), { recursive: true })
  const layer = await writeBlob(layout, 'application/vnd.oci.image.layer.v1.tar', randomBytes(3 * MiB))
  const config = await writeBlob(layout, ociMediaTypes.config, Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' })))
  const manifest = await writeBlob(
    layout,
    ociMediaTypes.manifest,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ociMediaTypes.manifest, config, layers: [layer] })),
  )
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  const ref = { [ociMediaTypes.refName]: 'example.com/watched/app:1.0' }
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ ...manifest, annotations: ref }] }))
  const bundle = join(server.dir, 'bundle.tar')
  await run('tar', ['-cf', bundle, '-C', layout, 'oci-layout', 'index.json', 'blobs'])

  const response = await fetch(`${server.url}/ferry/v1/imports?namespace=site`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/octet-stream' },
    body: await readFile(bundle),
  })
  const status = (await response.json()) as { state?: string }
  t.equal(response.status, 202)
  t.equal(status.state, 'done')
  t.same(told, ['import begin', 'import end'], 'one import, and its blob writes are not uploads')
  const tagged = await fetch(`${server.url}/v2/site/watched/app/manifests/1.0`, { method: 'HEAD', headers: { authorization } })
  t.equal(tagged.status, 200, 'the image landed')
})
