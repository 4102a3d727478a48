// `ferry push images` end to end: bundles built by skopeo and umoci (test/helpers/bundles.ts)
// pushed by the real CLI into a real Ferry process (htpasswd accounts, Bearer tokens) and into
// CNCF distribution (Basic auth), then read back with skopeo: OCI inputs keep every digest and
// byte, legacy docker saves land with their uncompressed layers, a second run uploads nothing,
// and broken bundles leave nothing tagged.
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { buildBundles, names, truncated } from '../helpers/bundles.js'
import { distributionUnavailable, startDistribution } from '../helpers/distribution.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { blobPath, readBlob, sha256, sha256File, tagDescriptor } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

interface Summary {
  type: 'summary'
  images: number
  pushed: number
  unchanged: number
  failed: number
  blobsPushed: number
  blobsSkipped: number
  blobsMounted: number
  bytesPushed: number
  spoolPeakBytes: number
  failures: Array<{ source: string | null; destination: string; error: string }>
}

interface Pushed {
  exit: number
  stdout: string
  stderr: string
  events: Array<Record<string, unknown>>
  summary: Summary | undefined
}

/** Runs `ferry push images` in-process (commander, flags and all); with --json the events are parsed. */
async function pushImages(args: string[]): Promise<Pushed> {
  const fake = fakeIo()
  // Never the default ./digest-map.json: that would be the checkout's.
  const map = args.includes('--digest-map') ? [] : ['--digest-map', join(tmpdir(), `ferry-digest-map-${process.pid}-${Date.now()}.json`)]
  await runCli(['node', 'ferry', 'push', 'images', ...args, ...map], fake.io)
  const events = args.includes('--json')
    ? fake
        .stdout()
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : []
  return {
    exit: fake.exits[0] ?? -1,
    stdout: fake.stdout(),
    stderr: fake.stderr(),
    events,
    summary: events.find((e) => e.type === 'summary') as Summary | undefined,
  }
}

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })

const missing = missingTools('skopeo', 'umoci', 'xz', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `push images e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-push-'))
  let ferry: FerryProcess | undefined
  t.teardown(async () => {
    if (ferry && !t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-6000)}`)
    await ferry?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const bundles = await buildBundles(join(work, 'bundles'))
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { pusher: 'pusher-pw' })
  ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', join(work, 'data'), '--htpasswd', htpasswd])
  const { host } = ferry
  const creds = ['--username', 'pusher', '--password', 'pusher-pw']
  const into = (namespace: string): string[] => ['--private-registry', `http://${host}/${namespace}`, ...creds]
  const inspectRaw = async (ref: string): Promise<Buffer> =>
    Buffer.from((await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', 'pusher:pusher-pw', `docker://${ref}`)).stdout, 'utf8')
  // Ferry falls back to its (unreachable) default upstream for what it lacks: "not tagged" is 404 or 503.
  const tagged = async (repo: string, tag: string): Promise<number> => {
    const response = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
      method: 'HEAD',
      headers: { authorization: `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}` },
    })
    return response.status === 503 ? 404 : response.status
  }

  await t.test('a multi-arch oci-archive (.tar.xz) lands byte-exact; skopeo pulls it back; a second run uploads nothing', async (t) => {
    const digestMap = join(work, 'multi-map.json')
    const first = await pushImages(['--source', bundles.ociTarXz, ...into('test-namespace'), '--digest-map', digestMap])
    t.equal(first.exit, 0, first.stderr)
    t.match(first.stdout, `pushed  ${names.multi} → ${host}/test-namespace/x/multi:2.0@${bundles.index.digest}`)
    t.match(first.stderr, /^IMAGES +PUSHED +UNCHANGED +FAILED +BLOBS PUSHED +SKIPPED +MOUNTED +BYTES +TIME +MB\/S\n1 +1 +0 +0 +\d+ /m)

    const raw = await inspectRaw(`${host}/test-namespace/x/multi:2.0`)
    t.ok(raw.equals(bundles.index.bytes), 'the index has its original bytes')
    const amd64 = await inspectRaw(`${host}/test-namespace/x/multi@${bundles.amd64.digest}`)
    t.ok(amd64.equals(bundles.amd64.bytes), 'and so has each platform manifest')
    const pulled = join(work, 'pulled-multi')
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--src-creds',
      'pusher:pusher-pw',
      `docker://${host}/test-namespace/x/multi:2.0`,
      `oci:${pulled}:back`,
    )
    t.equal((await tagDescriptor(pulled, 'back')).digest, bundles.index.digest, 'skopeo copy --all: the index digest')
    for (const layer of [...bundles.amd64.manifest.layers, ...bundles.arm64.manifest.layers]) {
      t.equal(await sha256File(blobPath(pulled, layer.digest)), layer.digest, `layer ${layer.digest.slice(7, 19)} pulled intact`)
    }
    const map = JSON.parse(await readFile(digestMap, 'utf8')) as Record<string, { destination: string; digest: string }>
    t.same(map, { [names.multi]: { destination: `${host}/test-namespace/x/multi:2.0`, digest: bundles.index.digest } })
    t.match(first.stderr, /staging: test-namespace\/ferry-bundle-staging emptied \(\d+ blob\(s\)\)/)
    const catalog = (await (
      await fetch(`http://${host}/v2/_catalog`, {
        headers: { authorization: `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}` },
      })
    ).json()) as { repositories: string[] }
    t.same(
      catalog.repositories.filter((r) => r.startsWith('test-namespace/')),
      ['test-namespace/x/multi'],
      'no staging repository is left in the namespace',
    )

    const second = await pushImages(['--source', bundles.ociTarXz, ...into('test-namespace'), '--json', '--digest-map', digestMap])
    t.equal(second.exit, 0)
    t.equal(second.summary?.bytesPushed, 0, 'second run: no blob bytes uploaded')
    t.equal(second.summary?.spoolPeakBytes, 0, 'and none written to the spool: staged blobs are only checked')
    t.equal(second.summary?.unchanged, 1)
    t.same(
      second.events.filter((e) => e.type === 'image.done').map((e) => [e.source, e.digest, e.unchanged]),
      [[names.multi, bundles.index.digest, true]],
      'NDJSON image.done with the digest',
    )
    t.ok(
      second.events.some((e) => e.type === 'image.start'),
      'NDJSON image.start',
    )
  })

  await t.test('a legacy docker save: pushed with its uncompressed layers under a Docker manifest built from manifest.json', async (t) => {
    const digestMap = join(work, 'legacy-map.json')
    const pushed = await pushImages(['--source', bundles.dockerArchive, ...into('test-namespace'), '--digest-map', digestMap])
    t.equal(pushed.exit, 0, pushed.stderr)
    const map = JSON.parse(await readFile(digestMap, 'utf8')) as Record<string, { destination: string; digest: string }>
    const entry = map[names.legacy]!
    t.equal(entry.destination, `${host}/test-namespace/anthos-baremetal-release/foo:1.8.0`, 'source host dropped, path kept')
    const raw = await inspectRaw(entry.destination)
    t.equal(sha256(raw), entry.digest, 'the digest map holds the pushed digest')
    const manifest = JSON.parse(raw.toString('utf8')) as {
      mediaType: string
      config: { digest: string }
      layers: Array<{ mediaType: string; digest: string }>
    }
    t.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json')
    t.same(
      manifest.layers.map((l) => l.mediaType),
      manifest.layers.map(() => 'application/vnd.docker.image.rootfs.diff.tar'),
    )
    const config = JSON.parse((await readBlob(bundles.layout, bundles.amd64.manifest.config.digest)).toString('utf8')) as {
      rootfs: { diff_ids: string[] }
    }
    t.same(
      manifest.layers.map((l) => l.digest),
      config.rootfs.diff_ids,
      'each layer is the uncompressed tar: its digest is the diff ID',
    )
    const pulled = join(work, 'pulled-legacy')
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', 'pusher:pusher-pw', `docker://${entry.destination}`, `oci:${pulled}:back`)
    t.pass('skopeo pulls it (and checks every blob digest)')

    const again = await pushImages(['--source', bundles.dockerArchive, ...into('test-namespace'), '--json', '--digest-map', digestMap])
    t.equal(again.summary?.bytesPushed, 0, 'the same bundle gives the same manifest: nothing new the second time')
    t.equal(again.summary?.unchanged, 1)
  })

  await t.test('a tar of archives (xz docker save, zstd oci-archive): every image lands', async (t) => {
    const pushed = await pushImages(['--source', bundles.nestedTar, ...into('nested'), '--json', '--digest-map', join(work, 'nested.json')])
    t.equal(pushed.exit, 0, pushed.stderr)
    t.equal(pushed.summary?.pushed, 2)
    t.ok((await inspectRaw(`${host}/nested/x/single:1.0`)).equals(bundles.amd64.bytes), 'the OCI image byte-exact')
    t.equal(await tagged('nested/anthos-baremetal-release/foo', '1.8.0'), 200, 'the docker save tagged')
    t.ok((pushed.summary?.blobsMounted ?? 0) > 0, 'blobs staged while streaming were mounted into their repositories')
  })

  await t.test('--platform pushes a subset: a rewritten index listing only it, whose digest the map records', async (t) => {
    const digestMap = join(work, 'platform-map.json')
    const pushed = await pushImages([
      '--source',
      bundles.ociTar,
      ...into('platform'),
      '--platform',
      'linux/arm64',
      '--digest-map',
      digestMap,
    ])
    t.equal(pushed.exit, 0, pushed.stderr)
    const map = JSON.parse(await readFile(digestMap, 'utf8')) as Record<string, { destination: string; digest: string }>
    const digest = map[names.multi]?.digest ?? ''
    t.not(digest, bundles.index.digest, 'a new index digest')
    const raw = await inspectRaw(`${host}/platform/x/multi:2.0`)
    t.equal(sha256(raw), digest, 'the tag serves the rewritten index, under the recorded digest')
    const index = JSON.parse(raw.toString('utf8')) as { manifests: Array<{ digest: string; platform?: { architecture?: string } }> }
    t.same(
      index.manifests.map((m) => [m.digest, m.platform?.architecture]),
      [[bundles.arm64.digest, 'arm64']],
      'only the arm64 child',
    )
    t.equal(await tagged('platform/x/multi', bundles.amd64.digest), 404, 'the amd64 manifest was not pushed')
    const none = await pushImages(['--source', bundles.ociTar, ...into('platform'), '--platform', 'linux/s390x', '--json'])
    t.equal(none.exit, 1, 'no image has the platform: nothing done')
    t.match(none.summary?.failures[0]?.error, /has no manifest for linux\/s390x/)
  })

  await t.test('a referrer (an SBOM whose subject is an image) travels with its subject', async (t) => {
    const folder = join(work, 'referrer-folder')
    await cp(bundles.ociFolder, folder, { recursive: true })
    const put = async (bytes: Buffer): Promise<string> => {
      const digest = sha256(bytes)
      await writeFile(blobPath(folder, digest), bytes)
      return digest
    }
    const empty = Buffer.from('{}')
    const payload = Buffer.from('{"spdxVersion":"SPDX-2.3"}')
    const artifact = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/spdx+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: await put(empty), size: empty.length },
        layers: [{ mediaType: 'application/spdx+json', digest: await put(payload), size: payload.length }],
        subject: {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: bundles.amd64.digest,
          size: bundles.amd64.bytes.length,
        },
      }),
    )
    const artifactDigest = await put(artifact)
    const index = JSON.parse(await readFile(join(folder, 'index.json'), 'utf8')) as { manifests: unknown[] }
    index.manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: artifactDigest, size: artifact.length })
    await writeFile(join(folder, 'index.json'), JSON.stringify(index))

    const pushed = await pushImages(['--source', folder, ...into('refs'), '--json', '--digest-map', join(work, 'refs.json')])
    t.equal(pushed.exit, 0, pushed.stderr)
    const destinations = pushed.events.filter((e) => e.type === 'image.done').map((e) => e.destination as string)
    t.ok(destinations.includes(`${host}/refs/x/multi@${artifactDigest}`), "pushed by digest into its subject's repository")
    t.notOk(
      destinations.some((d) => d.includes('/unnamed')),
      'not as an unnamed image',
    )
    const referrers = (await (
      await fetch(`http://${host}/v2/refs/x/multi/referrers/${bundles.amd64.digest}`, {
        headers: { authorization: `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}` },
      })
    ).json()) as { manifests: Array<{ digest: string; artifactType?: string }> }
    t.same(
      referrers.manifests.map((m) => [m.digest, m.artifactType]),
      [[artifactDigest, 'application/spdx+json']],
      'the registry lists it as a referrer of the image',
    )
  })

  await t.test('on a terminal, missing credentials are asked for (the password hidden)', async (t) => {
    const fake = fakeIo()
    const asked: Array<[string, boolean]> = []
    fake.io.ask = async (prompt, hidden) => {
      asked.push([prompt, hidden])
      return hidden ? 'pusher-pw' : 'pusher'
    }
    await runCli(
      [
        'node',
        'ferry',
        'push',
        'images',
        '--source',
        bundles.ociTar,
        '--private-registry',
        `http://${host}/prompted`,
        '--digest-map',
        join(work, 'prompted.json'),
      ],
      fake.io,
    )
    t.equal(fake.exits[0], 0, fake.stderr())
    t.same(asked, [
      [`username for ${host}: `, false],
      [`password for pusher@${host}: `, true],
    ])
    const withUser = fakeIo()
    withUser.io.ask = async () => 'pusher-pw'
    await runCli(
      [
        'node',
        'ferry',
        'push',
        'images',
        '--source',
        bundles.ociTar,
        '--private-registry',
        `http://${host}/prompted`,
        '--username',
        'pusher',
        '--digest-map',
        join(work, 'prompted.json'),
      ],
      withUser.io,
    )
    t.equal(withUser.exits[0], 0, withUser.stderr())
    const noTerminal = await pushImages([
      '--source',
      bundles.ociTar,
      '--private-registry',
      `http://${host}/prompted`,
      '--username',
      'pusher',
    ])
    t.equal(noTerminal.exit, 1, 'off a terminal a missing password is an error')
    t.match(noTerminal.stderr, '--username and --password go together')
  })

  await t.test('--name-strategy, --max-depth, --include and --exclude choose what goes where (dry run)', async (t) => {
    const plan = async (...flags: string[]): Promise<string[]> => {
      const result = await pushImages(['--source', bundles.nestedTar, ...into('names'), '--dry-run', '--json', ...flags])
      t.equal(result.exit, 0, result.stderr)
      const summary = result.summary as unknown as { plan: Array<{ destination: string }> }
      return summary.plan.map((p) => p.destination).sort()
    }
    t.same(await plan(), [`${host}/names/anthos-baremetal-release/foo:1.8.0`, `${host}/names/x/single:1.0`])
    t.same(await plan('--name-strategy', 'basename'), [`${host}/names/foo:1.8.0`, `${host}/names/single:1.0`])
    t.same(await plan('--name-strategy', 'flatten'), [`${host}/names/anthos-baremetal-release-foo:1.8.0`, `${host}/names/x-single:1.0`])
    t.same(await plan('--max-depth', '1'), [`${host}/names/anthos-baremetal-release-foo:1.8.0`, `${host}/names/x-single:1.0`])
    t.same(await plan('--include', 'gcr.io/x/*'), [`${host}/names/x/single:1.0`])
    t.same(await plan('--exclude', 'gcr.io/x/**'), [`${host}/names/anthos-baremetal-release/foo:1.8.0`])
  })

  await t.test('a truncated .tar.gz: a clear error naming the file, exit 1, nothing tagged', async (t) => {
    const cut = await truncated(bundles.ociTarGz, 0.6)
    const pushed = await pushImages(['--source', cut, ...into('truncated'), '--digest-map', join(work, 'cut.json')])
    t.equal(pushed.exit, 1)
    t.match(pushed.stderr, `ferry: ${cut}: gzip data is corrupt or truncated`)
    t.equal(await tagged('truncated/x/multi', '2.0'), 404, 'nothing tagged')
    const cutTar = await truncated(bundles.ociTar, 0.6)
    const plain = await pushImages(['--source', cutTar, ...into('truncated'), '--digest-map', join(work, 'cut.json')])
    t.equal(plain.exit, 1)
    t.match(plain.stderr, `ferry: ${cutTar}: the tar archive is truncated`)
    t.equal(await tagged('truncated/x/multi', '2.0'), 404, 'nothing tagged from a truncated plain tar either')
  })

  await t.test('a corrupt layer in a folder: that image fails naming file and image, the other lands; --keep-going exits 2', async (t) => {
    const folder = join(work, 'corrupt-folder')
    await cp(bundles.ociFolder, folder, { recursive: true })
    const layer = bundles.arm64.manifest.layers[0]!
    await writeFile(blobPath(folder, layer.digest), Buffer.alloc(layer.size, 7))
    const pushed = await pushImages([
      '--source',
      folder,
      ...into('corrupt'),
      '--keep-going',
      '--json',
      '--digest-map',
      join(work, 'c.json'),
    ])
    t.equal(pushed.exit, 2)
    t.equal(pushed.summary?.failed, 1)
    t.comment(pushed.summary?.failures[0]?.error ?? '')
    t.match(pushed.summary?.failures[0], {
      source: names.multi,
      error: new RegExp(`${names.multi}.*${blobPath(folder, layer.digest)}.*content does not match its digest`),
    })
    t.equal(await tagged('corrupt/x/multi', '2.0'), 404, 'the broken image is not tagged')
    t.equal(await tagged('corrupt/x/single', '1.0'), 200, 'the other one is')

    // The same as a plain tar, whose blobs are uploaded straight from the file.
    const tar = join(work, 'corrupt.tar')
    await run('tar', ['-cf', tar, '-C', folder, '.'])
    const fromTar = await pushImages([
      '--source',
      tar,
      ...into('corrupt-tar'),
      '--keep-going',
      '--json',
      '--digest-map',
      join(work, 'ct.json'),
    ])
    t.equal(fromTar.exit, 2)
    t.match(fromTar.summary?.failures[0], {
      source: names.multi,
      error: new RegExp(`${names.multi}.*${tar}!/blobs/sha256/${layer.digest.slice(7)}.*content does not match its digest`),
    })
    t.equal(await tagged('corrupt-tar/x/multi', '2.0'), 404, 'the broken image is not tagged')
    t.equal(await tagged('corrupt-tar/x/single', '1.0'), 200, 'the other one is')
  })

  await t.test('--dry-run prints the table and pushes nothing; bad credentials stop the run with exit 1', async (t) => {
    const dry = await pushImages(['--source', bundles.nestedTar, ...into('dry'), '--dry-run'])
    t.equal(dry.exit, 0)
    t.match(dry.stdout, /^SOURCE\s+DESTINATION\s+DIGEST$/m)
    t.match(dry.stdout, `${names.single}  `)
    t.match(dry.stdout, `${host}/dry/anthos-baremetal-release/foo:1.8.0`)
    t.equal(await tagged('dry/x/single', '1.0'), 404)
    const refused = await pushImages([
      '--source',
      bundles.ociTar,
      '--private-registry',
      `http://${host}/x`,
      '--username',
      'pusher',
      '--password',
      'wrong',
    ])
    t.equal(refused.exit, 1)
    t.match(refused.stderr, /refused the credentials|401/)
  })

  await t.test('Ctrl-C stops a run midway: exit 1 naming the signal, nothing tagged', async (t) => {
    // The bundle arrives through a named pipe, so the test decides when the rest of it comes.
    const fifo = join(work, 'bundle.fifo')
    await run('mkfifo', [fifo])
    const fake = fakeIo()
    const running = runCli(
      ['node', 'ferry', 'push', 'images', '--source', fifo, ...into('interrupted'), '--digest-map', join(work, 'i.json')],
      fake.io,
    )
    const bytes = await readFile(bundles.ociTar)
    // Opening the pipe completes once the command reads it, after it installed its signal handlers.
    const writer = createWriteStream(fifo)
    // The reader gives up on the pipe once interrupted: the rest of the bundle meets EPIPE.
    writer.on('error', () => undefined)
    await once(writer, 'open')
    writer.write(bytes.subarray(0, bytes.length / 2))
    fake.signal('SIGINT')
    writer.end(bytes.subarray(bytes.length / 2))
    await running
    t.same(fake.exits, [1])
    t.match(fake.stderr(), 'interrupted by SIGINT')
    t.equal(await tagged('interrupted/x/multi', '2.0'), 404)
  })

  await t.test('the real program (a separate process) exits 0 and prints the summary', async (t) => {
    const entry = join(import.meta.dirname, '..', 'helpers', 'run-ferry.ts')
    const result = await run(process.execPath, [
      '--import',
      'tsx',
      entry,
      'push',
      'images',
      '--source',
      bundles.ociTarZst,
      ...into('process'),
      '--digest-map',
      join(work, 'process.json'),
    ])
    t.match(result.stdout, `pushed  ${names.multi} → ${host}/process/x/multi:2.0@${bundles.index.digest}`)
    t.match(result.stderr, /^IMAGES +PUSHED .* MB\/S\n1 +1 +0 +0 +\d+ +\d+ +\d+ +[\d.]+ MB +[\d.]+ s +[\d.]+$/m)
  })

  const unavailable = distributionUnavailable()
  await t.test(
    'into CNCF distribution with Basic auth: byte-exact, and a second run uploads nothing',
    { skip: unavailable ?? false },
    async (t) => {
      const registry = await startDistribution({ auth: 'htpasswd', users: { pusher: 'pusher-pw' } })
      t.teardown(() => registry.stop())
      const args = [
        '--private-registry',
        `http://${registry.host}/test-namespace`,
        ...creds,
        '--json',
        '--digest-map',
        join(work, 'd.json'),
      ]
      for (const source of [bundles.ociTarZst, bundles.nestedTar]) {
        const pushed = await pushImages(['--source', source, ...args])
        t.equal(pushed.exit, 0, `${source}: ${pushed.stderr}`)
        const progress = pushed.events.filter((e) => e.type === 'blob.progress').map((e) => e.bytesPushed as number)
        t.ok(progress.length > 0, `${source}: NDJSON blob.progress events`)
        t.same(
          progress,
          [...progress].sort((a, b) => a - b),
          'whose byte counts never go back',
        )
      }
      t.ok((await inspectRaw(`${registry.host}/test-namespace/x/multi:2.0`)).equals(bundles.index.bytes), 'the index byte-exact')
      t.ok(
        (await inspectRaw(`${registry.host}/test-namespace/x/single:1.0`)).equals(bundles.amd64.bytes),
        'the nested OCI image byte-exact',
      )
      const legacy = JSON.parse(
        (await inspectRaw(`${registry.host}/test-namespace/anthos-baremetal-release/foo:1.8.0`)).toString('utf8'),
      ) as {
        layers: Array<{ mediaType: string }>
      }
      t.equal(legacy.layers[0]?.mediaType, 'application/vnd.docker.image.rootfs.diff.tar', 'distribution took the uncompressed layers')
      for (const source of [bundles.ociTarZst, bundles.nestedTar]) {
        const again = await pushImages(['--source', source, ...args])
        t.equal(again.summary?.bytesPushed, 0, `${source}: second run uploads nothing`)
      }
    },
  )

  await t.test(
    'https with --cacert (the default scheme); without the CA the run stops naming TLS',
    { skip: unavailable ?? pkiUnavailable() ?? false },
    async (t) => {
      const ca = await makeCa(join(work, 'ca'))
      const cert = await issueServerCert(ca, { cn: '127.0.0.1' })
      const registry = await startDistribution({
        auth: 'htpasswd',
        users: { pusher: 'pusher-pw' },
        tls: { certificate: cert.fullChainPath, key: cert.keyPath },
      })
      t.teardown(() => registry.stop())
      const args = [
        '--source',
        bundles.ociTarGz,
        '--private-registry',
        `${registry.host}/secure`,
        ...creds,
        '--json',
        '--digest-map',
        join(work, 'tls.json'),
      ]
      const refused = await pushImages(args)
      t.equal(refused.exit, 1)
      t.match(refused.stderr, /TLS|certificate/i)
      const pushed = await pushImages([...args, '--cacert', ca.certPath])
      t.equal(pushed.exit, 0, pushed.stderr)
      t.equal(pushed.summary?.pushed, 1)
    },
  )
}
