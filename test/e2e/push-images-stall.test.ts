// One stuck connection never fails a `ferry push images` run: a proxy in front of a real Ferry
// stalls one upload body part-way (it stops reading) or one download body (it stops sending),
// once; with a short stall timeout the client cuts that request and its retry goes through. The
// headers timeout (120 s) would end a stalled upload too, far later: these runs must finish well
// before it. An image's bytes in place never go back while its upload is cut and sent again.
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BundlePush } from '../../src/bundle/importer.js'
import { RegistrySink } from '../../src/bundle/registry-sink.js'
import type { PushEvent } from '../../src/bundle/results.js'
import { runCli } from '../../src/cli/main.js'
import { RegistryClient } from '../../src/client/registry-client.js'
import { Transport } from '../../src/client/transport.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { eventually } from '../helpers/eventually.js'
import { sha256 } from '../helpers/oci-layout.js'
import { startTestServer } from '../helpers/server.js'
import { startStallProxy } from '../helpers/stall-proxy.js'
import { missingTools, run } from '../helpers/tools.js'

const MiB = 1024 * 1024
const source = 'gcr.io/x/big:1.0'
// Far more than the loopback socket buffers of both ends hold, so a stalled upload really stops.
const layer = randomBytes(48 * MiB)
const layerHex = sha256(layer).slice('sha256:'.length)
// Well inside tap's timeout, far below the 120 s headers timeout a stall would otherwise wait for.
const bound = { timeout: 90_000 }

/** An OCI layout folder of one image with a large layer (no tar inside: registries do not look). */
async function writeLayout(dir: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  const put = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = sha256(bytes)
    await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes)
    return { digest, size: bytes.length }
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await put(config)) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...(await put(layer)) }],
    }),
  )
  const root = await put(manifest)
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...root, annotations: { 'org.opencontainers.image.ref.name': source } },
      ],
    }),
  )
}

async function pushCli(args: string[], env: Record<string, string> = {}) {
  const fake = fakeIo(env)
  await runCli(['node', 'ferry', 'push', 'images', '--need-credential=false', '--json', ...args], fake.io)
  const events = fake
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  const summary = events.find((e) => e.type === 'summary')
  return { exit: fake.exits[0] ?? -1, stderr: fake.stderr(), summary, events }
}

async function gzipFile(from: string, to: string): Promise<void> {
  await pipeline(createReadStream(from), createGzip(), createWriteStream(to))
}

const missing = missingTools('tar')
if (missing.length > 0) {
  t.plan(0, `stall e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-stall-'))
  const server = await startTestServer()
  t.teardown(async () => {
    await server.close()
    await rm(work, { recursive: true, force: true })
  })
  const folder = join(work, 'layout')
  await writeLayout(folder)
  const tar = join(work, 'bundle.tar')
  await run('tar', ['-cf', tar, '-C', folder, 'oci-layout', 'blobs', 'index.json'])
  const uploadOfLayer = { method: 'PUT', path: new RegExp(`/blobs/uploads/.*digest=sha256(%3A|:)${layerHex}`) }

  t.test('an upload that stalls part-way is cut and sent again; the image bytes never go back', bound, async (t) => {
    const proxy = await startStallProxy(server.url, { upload: uploadOfLayer, afterBytes: MiB })
    t.teardown(() => proxy.close())
    // As the CLI builds it: a long headers timeout, the stall timeout on bodies.
    const client = new RegistryClient({
      url: proxy.url,
      transport: new Transport({ timeouts: { connectMs: 10_000, headersMs: 120_000, bodyIdleMs: 1_000 } }),
      timeouts: { sendStallMs: 1_000 },
    })
    t.teardown(() => client.close())
    const events: PushEvent[] = []
    // A folder's blobs are uploaded while the images are pushed, where each image counts its bytes.
    const push = new BundlePush({
      source: folder,
      namespace: 'folder',
      sink: new RegistrySink(client, { maxRetries: 4, baseDelayMs: 50, maxDelayMs: 200 }),
      concurrency: 4,
      keepGoing: false,
      onEvent: (event) => events.push(event),
    })
    const report = await push.run()
    t.same(
      report.images.map((i) => [i.source, i.status]),
      [[source, 'pushed']],
    )
    t.same(proxy.stalled(), { uploads: 1, downloads: 0 }, 'the layer upload stalled once')
    const done = events.flatMap((e) => (e.type === 'image.progress' ? [e.bytesDone] : []))
    const total = push.images[0]!.bytesTotal
    t.ok(
      done.some((bytes) => bytes > 0 && bytes < total),
      'progress was seen part-way',
    )
    t.same(
      done,
      [...done].sort((a, b) => a - b),
      'and never went back, although the upload started over',
    )
    t.equal(done.at(-1), total, 'ending with every byte in place')
    t.equal(push.images[0]!.state, 'pushed')
  })

  t.test('the CLI: a stalled staging upload, then a stalled manifest download, are retried; the runs exit 0', bound, async (t) => {
    // No manifest is downloaded before the rerun, which reads the images of the digest map first.
    const download = { method: 'GET', path: /\/manifests\// }
    const proxy = await startStallProxy(server.url, { upload: uploadOfLayer, download, afterBytes: 100 })
    t.teardown(() => proxy.close())
    const map = join(work, 'map.json')
    const args = ['--source', tar, '--private-registry', `http://${proxy.host}/cli`, '--digest-map', map]
    const pushed = await pushCli([...args, '--stall-timeout', '1'])
    t.equal(pushed.exit, 0, pushed.stderr)
    t.equal(pushed.summary?.pushed, 1)
    t.same(proxy.stalled(), { uploads: 1, downloads: 0 }, 'the layer upload stalled once')

    const rerun = await pushCli(args, { FERRY_PUSH_STALL_TIMEOUT: '1' })
    t.equal(rerun.exit, 0, rerun.stderr)
    t.same(proxy.stalled(), { uploads: 1, downloads: 1 }, 'the manifest download stalled once')
    t.equal(rerun.summary?.bytesPushed, 0, 'its retry read the manifest: the rerun uploads nothing')
    t.equal(rerun.summary?.unchanged, 1)
  })

  t.test('a plain tar blob whose bytes do not match its name: the registry refuses it once, nothing is tagged', bound, async (t) => {
    // The same layout with the layer's bytes changed (same size): read straight from the tar, checked by the registry.
    const corrupt = join(work, 'corrupt')
    await writeLayout(corrupt)
    await writeFile(join(corrupt, 'blobs', 'sha256', layerHex), Buffer.alloc(layer.length, 7))
    const corruptTar = join(work, 'corrupt.tar')
    await run('tar', ['-cf', corruptTar, '-C', corrupt, 'oci-layout', 'blobs', 'index.json'])
    const proxy = await startStallProxy(server.url, { afterBytes: 0, count: uploadOfLayer })
    t.teardown(() => proxy.close())
    const args = ['--source', corruptTar, '--private-registry', `http://${proxy.host}/corrupt`, '--digest-map', join(work, 'corrupt.json')]
    const pushed = await pushCli(args)
    t.not(pushed.exit, 0)
    t.match(JSON.stringify(pushed.summary), `${corruptTar}!/blobs/sha256/${layerHex}`, 'the failure names the file')
    t.match(JSON.stringify(pushed.summary), /content does not match its digest .*DIGEST_INVALID/)
    const bodies = await eventually(() => proxy.counted().length > 0 && proxy.counted(), { message: 'the layer upload ended' })
    t.same(bodies, [layer.length], 'the registry got the bytes once and refused them: a mismatch is not retried')
    const tag = await fetch(`${server.url}/v2/corrupt/x/big/manifests/1.0`, { method: 'HEAD' })
    t.equal(tag.status, 404, 'nothing tagged')
  })

  // A compressed bundle cannot be seeked: its blobs are uploaded as they stream out of it, read once.
  t.test('a streamed blob whose upload stalls is read from the bundle again and sent; the run exits 0', bound, async (t) => {
    const gz = join(work, 'bundle.tar.gz')
    await gzipFile(tar, gz)
    const proxy = await startStallProxy(server.url, { upload: uploadOfLayer, afterBytes: MiB })
    t.teardown(() => proxy.close())
    const args = ['--source', gz, '--private-registry', `http://${proxy.host}/streamed`, '--digest-map', join(work, 'streamed.json')]
    const pushed = await pushCli([...args, '--stall-timeout', '1'])
    t.equal(pushed.exit, 0, pushed.stderr)
    t.same(proxy.stalled(), { uploads: 1, downloads: 0 }, 'the layer upload stalled once')
    t.same(
      pushed.events.filter((e) => e.type === 'read.again'),
      [{ type: 'read.again', blobs: 1 }],
      'the bundle was read again for that one blob',
    )
    t.equal(pushed.summary?.pushed, 1)
    const blob = await fetch(`${server.url}/v2/streamed/x/big/blobs/sha256:${layerHex}`)
    t.equal(blob.status, 200)
    t.equal(sha256(Buffer.from(await blob.arrayBuffer())), `sha256:${layerHex}`, 'the layer landed whole')
    const tag = await fetch(`${server.url}/v2/streamed/x/big/manifests/1.0`, { method: 'HEAD' })
    t.equal(tag.status, 200, 'and the image is tagged')
  })

  t.test(
    'a streamed blob whose bytes do not match its name: the registry refuses it; file and image named, nothing tagged',
    bound,
    async (t) => {
      const corrupt = join(work, 'corrupt-streamed')
      await writeLayout(corrupt)
      await writeFile(join(corrupt, 'blobs', 'sha256', layerHex), Buffer.alloc(layer.length, 9))
      const corruptTar = join(work, 'corrupt-streamed.tar')
      await run('tar', ['-cf', corruptTar, '-C', corrupt, 'oci-layout', 'blobs', 'index.json'])
      const gz = `${corruptTar}.gz`
      await gzipFile(corruptTar, gz)
      const args = ['--source', gz, '--private-registry', `http://${server.host}/corrupt-streamed`, '--digest-map', join(work, 'cs.json')]
      const pushed = await pushCli(args)
      t.not(pushed.exit, 0)
      t.match(pushed.summary?.failures, [
        { source, error: new RegExp(`${gz}!/blobs/sha256/${layerHex}.*content does not match its digest`) },
      ])
      t.same(
        pushed.events.filter((e) => e.type === 'read.again'),
        [],
        'a mismatch is final: the bundle is not read again',
      )
      const tag = await fetch(`${server.url}/v2/corrupt-streamed/x/big/manifests/1.0`, { method: 'HEAD' })
      t.equal(tag.status, 404, 'nothing tagged')
    },
  )

  t.test('a stall timeout that is not a positive number is refused', async (t) => {
    const flag = await pushCli(['--source', tar, '--private-registry', `http://${server.host}/x`, '--stall-timeout', '0'])
    t.equal(flag.exit, 1)
    t.match(flag.stderr, /--stall-timeout.*expected seconds/)
    const env = await pushCli(['--source', tar, '--private-registry', `http://${server.host}/x`], { FERRY_PUSH_STALL_TIMEOUT: 'soon' })
    t.equal(env.exit, 1)
    t.match(env.stderr, /FERRY_PUSH_STALL_TIMEOUT="soon": expected a number of seconds/)
  })
}
