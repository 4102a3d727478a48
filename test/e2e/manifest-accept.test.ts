// What curl does: a manifest GET with `Accept: */*`, or with no Accept at all, accepts every
// manifest type. Against a real distribution upstream (which itself refuses OCI manifests to such
// a request), Ferry asks upstream for every type and serves what the registry has, fetched or
// cached. A client that truly excludes the upstream's type learns why from the error detail.
import t from 'tap'
import { request } from 'undici'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { seedImage, seedIndex } from '../helpers/seed.js'

const skip = distributionUnavailable()
if (skip) t.plan(0, skip)

/** GET as curl sends it (`*\/*`) or with no Accept header at all (undici's request adds none). */
async function get(url: string, accept: string | undefined) {
  const response = await request(url, { headers: accept === undefined ? {} : { accept } })
  const body = Buffer.from(await response.body.arrayBuffer())
  return { status: response.statusCode, type: response.headers['content-type'], digest: response.headers['docker-content-digest'], body }
}

t.test('Accept */* and no Accept get the OCI manifest and index, from the upstream and from the cache', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer({ upstreams: [upstreamConfig('docker.io', upstream.url)], defaultUpstream: 'docker.io' })
  t.teardown(() => ferry.close())

  for (const accept of ['*/*', undefined]) {
    const what = accept === undefined ? 'no Accept' : `Accept ${accept}`
    // Repositories of their own, so each header is the first to ask for them.
    const ns = accept === undefined ? 'none' : 'any'
    const image = await seedImage(upstream.url, `${ns}/app`, '1.0')
    const amd = await seedImage(upstream.url, `${ns}/multi`, 'amd64')
    const arm = await seedImage(upstream.url, `${ns}/multi`, 'arm64', { platform: { architecture: 'arm64', os: 'linux' } })
    const index = await seedIndex(upstream.url, `${ns}/multi`, '1.0', [amd, arm])
    for (const round of ['fetched', 'cached']) {
      const single = await get(`${ferry.url}/v2/${ns}/app/manifests/1.0`, accept)
      t.equal(single.status, 200, `${what}, ${round}: image manifest`)
      t.equal(single.type, image.manifest.mediaType)
      t.same(single.body, image.manifest.bytes, 'the exact bytes')
      const multi = await get(`${ferry.url}/v2/${ns}/multi/manifests/1.0`, accept)
      t.equal(multi.status, 200, `${what}, ${round}: index`)
      t.equal(multi.type, index.mediaType)
      t.same(multi.body, index.bytes)
      const byDigest = await get(`${ferry.url}/v2/${ns}/multi/manifests/${amd.manifest.digest}`, accept)
      t.equal(byDigest.status, 200, `${what}, ${round}: a child by digest`)
    }
  }
})

t.test('a client whose Accept excludes the upstream type hears the upstream reason', async (t) => {
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  await seedImage(upstream.url, 'library/oci-only', '1.0')
  const ferry = await startMirrorServer({ upstreams: [upstreamConfig('docker.io', upstream.url)], defaultUpstream: 'docker.io' })
  t.teardown(() => ferry.close())
  const answer = await get(`${ferry.url}/v2/library/oci-only/manifests/1.0`, 'application/vnd.docker.distribution.manifest.v2+json')
  t.equal(answer.status, 404)
  const error = (JSON.parse(answer.body.toString()) as { errors: { code: string; message: string; detail?: string }[] }).errors[0]
  t.equal(error?.code, 'MANIFEST_UNKNOWN')
  t.match(error?.message, /media type/, 'the message says why')
  t.match(error?.detail, /upstream=docker\.io repo=library\/oci-only /, 'names the upstream and the repository asked')
  t.match(error?.detail, /upstreamMessage=.*accept header does not support OCI manifests/, 'and carries the upstream reason')
})
