// The distribution helper in pull-through mode, read through RegistryUpstream: a chain
// (RegistryUpstream → distribution proxy → distribution origin) like the one Ferry's own
// mirror tests build, with the origin's access log counting what reached it.
import { access } from 'node:fs/promises'
import t from 'tap'
import type { Digest } from '../../src/core/digest.js'
import { RegistryUpstream } from '../../src/upstream/registry-upstream.js'
import { distributionUnavailable, startDistribution, type Distribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { seedImage } from '../helpers/seed.js'

function blobGets(registry: Distribution, repo: string, digest: string): number {
  return registry.requests().filter((r) => r.method === 'GET' && r.path === `/v2/${repo}/blobs/${digest}`).length
}

t.test(
  'a distribution proxy serves origin content; later reads of a blob stay local',
  { skip: distributionUnavailable() ?? false },
  async (t) => {
    const origin = await startDistribution()
    t.teardown(() => origin.stop())
    const proxy = await startDistribution({ proxyOf: origin.url })
    t.teardown(() => proxy.stop())
    const image = await seedImage(origin.url, 'library/app', 'v1', { format: 'docker' })
    const layer = image.layers[0]!

    const upstream = new RegistryUpstream({ name: 'proxy', url: proxy.url })
    t.teardown(() => upstream.close())
    t.ok((await upstream.getManifest('library/app', 'v1'))?.bytes.equals(image.manifest.bytes))

    const read = async () => Buffer.concat(await (await upstream.openBlob('library/app', layer.digest as Digest))!.stream.toArray())
    t.ok((await read()).equals(layer.bytes), 'first read, through to the origin')
    // distribution 2.8 fetches a missing blob twice: once to store it (in the background), once
    // to stream it to the client. Ferry's single fill per digest is meant to avoid exactly this.
    // Both are awaited, and the stored copy's repository link (written by its commit), so the
    // later reads find the blob stored: the origin logs the store's GET before the proxy commits.
    const firstMiss = await eventually(() => blobGets(origin, 'library/app', layer.digest) === 2 && 2, {
      message: 'the proxy fetched the blob to store it and to stream it',
    })
    t.equal(firstMiss, 2, 'the first miss cost the origin 2 GETs')
    const link = proxy.storagePath(
      `docker/registry/v2/repositories/library/app/_layers/sha256/${layer.digest.slice('sha256:'.length)}/link`,
    )
    await eventually(
      () =>
        access(link).then(
          () => true,
          () => false,
        ),
      { message: 'the proxy committed the blob' },
    )
    t.ok((await read()).equals(layer.bytes), 'second read')
    t.ok((await read()).equals(layer.bytes), 'third read')
    await origin.loggedRequests()
    t.equal(blobGets(origin, 'library/app', layer.digest), firstMiss, 'later reads were served from the proxy store')
    t.ok(proxy.accessLog().length >= 4, 'raw access lines are exposed too')
  },
)
