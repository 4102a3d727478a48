// containerd 1.6 pulling through Ferry (a real `ferry serve` process) from CNCF distribution, the
// upstream standing in for gcr.io. Every pull is `ctr images pull --hosts-dir` into a fresh,
// private containerd, with a hosts.toml whose `server` is a local stand-in answering 503 to
// everything: a pull that succeeds was served by the mirror entry, i.e. by Ferry.
//
// Between containerd and each Ferry sits a recording pass-through (test/helpers/recording-proxy.ts)
// so the test can see the exact request lines (`?ns=gcr.io`, the mirror path shapes) and the
// `OCI-Namespace` echo; Ferry's own request log names route and repository but not the query.
//
// Every Ferry runs with `--htpasswd` (accounts exist; mirrored content is open to anonymous
// pulls by default), so containerd's anonymous pulls are checked with authentication on; case 6
// seeds its Ferry with skopeo `--dest-creds`, and opens the pushed test-namespace to anonymous
// pulls with `--anonymous-pull` (pushed content is private by default).
//
// Case 6 runs before case 5 because case 5 stops the upstream. CONTAINERD_E2E_VERBOSE=1 prints the
// recorded wire and Ferry's log of every case, not only of failing ones.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { containerdUnavailable, startContainerd, type Containerd } from '../helpers/containerd.js'
import { distributionUnavailable, startDistribution, type AccessLogEntry, type Distribution } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { closedPort, startStub, type HttpStub } from '../helpers/http-stub.js'
import { buildImage, gcLayout, initLayout, readBlob, tagDescriptor, type ImageManifest } from '../helpers/oci-layout.js'
import { startRecordingProxy, type RecordedExchange, type RecordingProxy } from '../helpers/recording-proxy.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { run } from '../helpers/tools.js'

const KiB = 1024
const repo = 'kubernetes-e2e-test-images/nautilus'
const tag = '1.0'
const ref = `gcr.io/${repo}:${tag}`

const why = containerdUnavailable('skopeo', 'umoci') ?? distributionUnavailable()
if (why !== undefined) {
  t.plan(0, `containerd e2e skipped: ${why}`)
} else {
  await main()
}

interface Mirror {
  name: string
  ferry: FerryProcess
  /** containerd talks to this pass-through, which forwards to `ferry`. */
  wire: RecordingProxy
}

/** One line of Ferry's JSON log with msg 'request'. */
interface FerryRequestLog {
  method: string
  route: string
  repo?: string
  status: number
}

async function main(): Promise<void> {
  const started = Date.now()
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-containerd-'))
  const mirrors: Mirror[] = []
  let distribution: Distribution | undefined
  let standIn: HttpStub | undefined
  t.teardown(async () => {
    await Promise.all(
      mirrors.map(async (m) => {
        await m.wire.close()
        await m.ferry.stop()
      }),
    )
    await distribution?.stop()
    await standIn?.close()
    await rm(work, { recursive: true, force: true })
  })

  // ---- fixtures: two small real images (valid tar layers containerd can unpack) ---------------
  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'upstream', { layerSizes: [192 * KiB, 12 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await buildImage(layout, 'local', { layerSizes: [48 * KiB, 3 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const upstreamImage = await tagDescriptor(layout, 'upstream')
  const localImage = await tagDescriptor(layout, 'local')
  const upstreamManifest = JSON.parse((await readBlob(layout, upstreamImage.digest)).toString('utf8')) as ImageManifest
  const upstreamBlobs = [upstreamManifest.config.digest, ...upstreamManifest.layers.map((l) => l.digest)]

  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 })
  distribution = await startDistribution()
  await skopeo(
    'copy',
    '--preserve-digests',
    '--dest-tls-verify=false',
    `oci:${layout}:upstream`,
    `docker://${distribution.host}/${repo}:${tag}`,
  )

  // The registry server of hosts.toml: never gcr.io, and never a success.
  standIn = await startStub((_request, response) => {
    response.writeHead(503, { 'content-type': 'text/plain' })
    response.end('stand-in for gcr.io: not the mirror')
  })

  // ---- one Ferry per case, so each case's pull fills from the upstream itself -----------------
  const mirrorFlags = ['--upstream', `gcr.io=${distribution.url}`, '--default-upstream', 'gcr.io', '--namespace', 'test-namespace=gcr.io']
  const nsOnlyFlags = [
    '--upstream',
    `other=http://127.0.0.1:${await closedPort()}`,
    '--upstream',
    `gcr.io=${distribution.url}`,
    '--default-upstream',
    'other',
  ]
  // Case 5's Ferry revalidates a tag on every lookup (tagTtl 0): once the upstream is down, the
  // by-tag pull goes through a failed revalidation and must still get the cached digest.
  const revalidatingConfig = join(work, 'ferry-revalidating.yaml')
  await writeFile(
    revalidatingConfig,
    stringify({
      mirror: {
        upstreams: [{ name: 'gcr.io', url: distribution.url, tagTtl: 0, retries: 0 }],
        defaultUpstream: 'gcr.io',
        namespaces: [{ name: 'test-namespace', upstream: 'gcr.io' }],
      },
    }),
  )
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { seeder: 'seeder-pw' })
  const startMirror = async (name: string, flags: string[]): Promise<Mirror> => {
    const ferry = await startFerryProcess([
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--storage',
      join(work, `ferry-${name}`),
      '--log-level',
      'info',
      '--htpasswd',
      htpasswd,
      ...flags,
    ])
    const mirror = { name, ferry, wire: await startRecordingProxy(ferry.url) }
    mirrors.push(mirror)
    return mirror
  }
  const [defaultRoute, nsRoute, overridePath, insertedV2, cacheOnly, shadow] = await Promise.all([
    startMirror('default-route', mirrorFlags),
    startMirror('ns-route', nsOnlyFlags),
    startMirror('override-path', mirrorFlags),
    startMirror('inserted-v2', mirrorFlags),
    startMirror('cache-only', ['--config', revalidatingConfig]),
    startMirror('shadow', [...mirrorFlags, '--anonymous-pull', 'test-namespace/**']),
  ])

  // overlayfs unless this machine cannot mount it.
  let snapshotter = 'overlayfs'
  {
    const probe = await startContainerd()
    try {
      if ((await probe.snapshotters()).get('overlayfs') !== 'ok') snapshotter = 'native'
    } finally {
      await probe.stop()
    }
  }
  t.comment(`fixtures, distribution, 6 Ferry processes ready in ${Date.now() - started} ms; snapshotter ${snapshotter}`)

  // ---- helpers -------------------------------------------------------------------------------
  let hostsDirs = 0
  /** `<dir>/gcr.io/hosts.toml`: the stand-in as server, `endpoint` as the one mirror. */
  const hostsDir = async (endpoint: string, extra: string[] = []): Promise<string> => {
    const dir = join(work, `hosts-${++hostsDirs}`)
    await mkdir(join(dir, 'gcr.io'), { recursive: true })
    const lines = [
      `server = "${standIn!.url}"`,
      '',
      `[host."${endpoint}"]`,
      '  capabilities = ["pull", "resolve"]',
      ...extra.map((l) => `  ${l}`),
      '',
    ]
    await writeFile(join(dir, 'gcr.io', 'hosts.toml'), lines.join('\n'))
    return dir
  }

  const freshContainerd = async (t: Test): Promise<Containerd> => {
    const containerd = await startContainerd()
    t.teardown(async () => {
      if (!t.passing()) t.comment(`containerd output (tail):\n${containerd.logs().slice(-6000)}`)
      await containerd.stop()
    })
    return containerd
  }

  /** Pulls `image` and checks containerd recorded `digest` for it and unpacked it completely. */
  const pullAndCheck = async (
    t: Test,
    containerd: Containerd,
    image: string,
    dir: string,
    digest: string,
    namespace?: string,
  ): Promise<void> => {
    const standInBefore = standIn!.requests.length
    const ns = namespace ? { namespace } : {}
    const pulled = await containerd.pull(image, { hostsDir: dir, snapshotter, ...ns })
    t.match(pulled.stdout, new RegExp(`unpacking linux/amd64 ${digest}\\.\\.\\.\\s*done`), `ctr pull unpacked ${digest.slice(0, 19)}…`)
    const listed = (await containerd.images(namespace)).find((row) => row.ref === image)
    t.equal(listed?.digest, digest, `ctr images ls: ${image} → ${digest.slice(0, 19)}…`)
    const check = (await containerd.ctr(['images', 'check', '--snapshotter', snapshotter], ns)).stdout
    t.match(
      check,
      new RegExp(`${escapeRegExp(image)}\\s.*complete \\(\\d+/\\d+\\).*\\strue\\s*$`, 'm'),
      'ctr images check: content complete and unpacked',
    )
    const snapshots = (await containerd.ctr(['snapshots', '--snapshotter', snapshotter, 'ls'], ns)).stdout
    t.equal(snapshots.split('\n').filter((l) => /\sCommitted\s*$/.test(l)).length, 2, `${snapshotter}: one committed snapshot per layer`)
    t.equal(standIn!.requests.length, standInBefore, 'the stand-in server (hosts.toml server) got no request')
  }

  const accessLogMark = (): number => distribution!.requests().length
  /** Distribution's access log since `mark`, once every request it answered so far is in it. */
  const upstreamSince = async (mark: number): Promise<AccessLogEntry[]> => {
    await distribution!.loggedRequests()
    return distribution!.requests().slice(mark)
  }
  const checkBlobsFetchedOnce = (t: Test, entries: AccessLogEntry[]): void => {
    for (const d of upstreamBlobs) {
      const gets = entries.filter((e) => e.method === 'GET' && e.path.split('?')[0] === `/v2/${repo}/blobs/${d}` && e.status === 200)
      t.equal(gets.length, 1, `upstream served blob ${d.slice(0, 19)}… exactly once`)
    }
  }

  const ferryRequests = (m: Mirror): FerryRequestLog[] =>
    m.ferry
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as FerryRequestLog & { msg?: string })
      .filter((r) => r.msg === 'request')
  /** Ferry's own log agrees: it answered the manifest and every blob with a 200. */
  const checkFerryLog = (t: Test, m: Mirror, digests: string[]): void => {
    const lines = ferryRequests(m)
    t.ok(
      lines.some((l) => l.route === 'manifest' && l.status === 200),
      `Ferry logged a 200 manifest request (${lines.length} request lines)`,
    )
    t.equal(
      lines.filter((l) => l.route === 'blob' && l.method === 'GET' && l.status === 200).length,
      digests.length,
      `Ferry logged ${digests.length} blob GETs with 200`,
    )
  }

  /** What crossed the wire to Ferry: the path shape, `?ns=gcr.io` everywhere, `OCI-Namespace` echoed. */
  const checkWire = (t: Test, m: Mirror, pathPrefix: string, digests: string[]): RecordedExchange[] => {
    const exchanges = m.wire.exchanges()
    t.ok(exchanges.length > 0, `containerd reached Ferry (${exchanges.length} requests)`)
    const first = exchanges[0]
    t.equal(
      first && `${first.method} ${first.url}`,
      `HEAD ${pathPrefix}/manifests/${tag}?ns=gcr.io`,
      'first request: HEAD of the tag with ?ns=gcr.io, no /v2/ ping',
    )
    for (const x of exchanges) {
      const url = new URL(x.url, 'http://mirror')
      t.ok(url.pathname.startsWith(`${pathPrefix}/`), `${x.method} ${x.url} has the mirror path shape ${pathPrefix}/`)
      t.equal(url.searchParams.get('ns'), 'gcr.io', `${x.method} ${url.pathname.slice(-30)} carried ?ns=gcr.io`)
      t.equal(x.status, 200, `${x.method} ${url.pathname.slice(-30)} answered 200`)
      t.equal(x.responseHeaders['oci-namespace'], 'gcr.io', `${x.method} ${url.pathname.slice(-30)}: Ferry echoed OCI-Namespace: gcr.io`)
    }
    for (const d of digests) {
      t.ok(
        exchanges.some((x) => x.method === 'GET' && x.url === `${pathPrefix}/blobs/${d}?ns=gcr.io` && x.status === 200),
        `blob ${d.slice(0, 19)}… came from Ferry`,
      )
    }
    return exchanges
  }

  const onFailure = (t: Test, m: Mirror): void => {
    t.teardown(() => {
      if (t.passing() && !process.env.CONTAINERD_E2E_VERBOSE) return
      t.comment(
        `wire to ${m.name}:\n${m.wire
          .exchanges()
          .map((x) => `${x.method} ${x.url} → ${x.status}`)
          .join('\n')}`,
      )
      t.comment(`Ferry ${m.name} output (tail):\n${m.ferry.logs().slice(-6000)}`)
    })
  }

  // ---- cases ---------------------------------------------------------------------------------
  // (No assertion before this point: tap ends a root test that asserted and then went idle.)
  t.equal(upstreamManifest.layers.length, 2, 'the upstream fixture has 2 layers')
  t.not(upstreamImage.digest, localImage.digest, 'the two fixtures differ')

  t.test('1. default route: gcr.io mirror entry → Ferry → default upstream', async (t) => {
    onFailure(t, defaultRoute)
    const mark = accessLogMark()
    const containerd = await freshContainerd(t)
    await pullAndCheck(t, containerd, ref, await hostsDir(defaultRoute.wire.url), upstreamImage.digest)
    checkWire(t, defaultRoute, `/v2/${repo}`, upstreamBlobs)
    checkFerryLog(t, defaultRoute, upstreamBlobs)
    checkBlobsFetchedOnce(t, await upstreamSince(mark))
  })

  t.test('2. ?ns= routing: the default upstream is dead, only ns=gcr.io can succeed', async (t) => {
    onFailure(t, nsRoute)
    const direct = await fetch(`${nsRoute.ferry.url}/v2/${repo}/manifests/${tag}`, { method: 'HEAD' })
    t.not(direct.status, 200, `without ?ns= the dead default upstream cannot serve it (HEAD → ${direct.status})`)
    const unknown = await fetch(`${nsRoute.ferry.url}/v2/${repo}/manifests/${tag}?ns=unknown.example`, { method: 'HEAD' })
    t.equal(unknown.status, 404, 'an ns naming no configured upstream → 404')

    const mark = accessLogMark()
    const containerd = await freshContainerd(t)
    await pullAndCheck(t, containerd, ref, await hostsDir(nsRoute.wire.url), upstreamImage.digest)
    checkWire(t, nsRoute, `/v2/${repo}`, upstreamBlobs)
    checkFerryLog(t, nsRoute, upstreamBlobs)
    checkBlobsFetchedOnce(t, await upstreamSince(mark))
  })

  t.test('3. namespaced endpoint with override_path: /v2/test-namespace/<repo>/...', async (t) => {
    onFailure(t, overridePath)
    const mark = accessLogMark()
    const containerd = await freshContainerd(t)
    await pullAndCheck(
      t,
      containerd,
      ref,
      await hostsDir(`${overridePath.wire.url}/v2/test-namespace`, ['override_path = true']),
      upstreamImage.digest,
    )
    checkWire(t, overridePath, `/v2/test-namespace/${repo}`, upstreamBlobs)
    checkFerryLog(t, overridePath, upstreamBlobs)
    checkBlobsFetchedOnce(t, await upstreamSince(mark))
  })

  t.test('4. namespaced endpoint without override_path: containerd inserts /v2', async (t) => {
    onFailure(t, insertedV2)
    const mark = accessLogMark()
    const containerd = await freshContainerd(t)
    await pullAndCheck(t, containerd, ref, await hostsDir(`${insertedV2.wire.url}/v2/test-namespace`), upstreamImage.digest)
    checkWire(t, insertedV2, `/v2/test-namespace/v2/${repo}`, upstreamBlobs)
    checkFerryLog(t, insertedV2, upstreamBlobs)
    checkBlobsFetchedOnce(t, await upstreamSince(mark))
  })

  // Before case 5, which stops the upstream: the upstream must be able to answer for shadowing to mean anything.
  t.test('6. local content shadows the upstream in the namespace', async (t) => {
    onFailure(t, shadow)
    await skopeo(
      'copy',
      '--preserve-digests',
      '--dest-creds',
      'seeder:seeder-pw',
      '--dest-tls-verify=false',
      `oci:${layout}:local`,
      `docker://${shadow.ferry.host}/test-namespace/${repo}:${tag}`,
    )
    const pushed = shadow.wire.exchanges().length // skopeo went straight to Ferry, not through the wire
    const mark = accessLogMark()
    const containerd = await freshContainerd(t)
    await pullAndCheck(
      t,
      containerd,
      ref,
      await hostsDir(`${shadow.wire.url}/v2/test-namespace`, ['override_path = true']),
      localImage.digest,
    )
    t.not(localImage.digest, upstreamImage.digest, 'and that is not the upstream image')
    const localManifest = JSON.parse((await readBlob(layout, localImage.digest)).toString('utf8')) as ImageManifest
    checkWire(t, shadow, `/v2/test-namespace/${repo}`, [localManifest.config.digest, ...localManifest.layers.map((l) => l.digest)])
    t.equal(pushed, 0, "skopeo pushed to Ferry directly; the recorded wire holds only containerd's pull")
    const upstream = await upstreamSince(mark)
    t.same(
      upstream.filter((e) => e.path.includes('/blobs/')),
      [],
      'no upstream blob was fetched',
    )
  })

  t.test("5. upstream down: a fresh containerd pulls by tag and by digest from Ferry's cache", async (t) => {
    onFailure(t, cacheOnly)
    // Fill this Ferry while the upstream is up (its own pull, its own containerd).
    const warm = await freshContainerd(t)
    const dir = await hostsDir(cacheOnly.wire.url)
    await pullAndCheck(t, warm, ref, dir, upstreamImage.digest)
    await warm.stop()
    await distribution!.stop()
    const down = await fetch(`${distribution!.url}/v2/`).then(
      () => 'up',
      () => 'down',
    )
    t.equal(down, 'down', 'distribution is stopped')

    const before = cacheOnly.wire.exchanges().length
    const containerd = await freshContainerd(t)
    await pullAndCheck(t, containerd, ref, dir, upstreamImage.digest, 'by-tag')
    const byDigest = `gcr.io/${repo}@${upstreamImage.digest}`
    await pullAndCheck(t, containerd, byDigest, dir, upstreamImage.digest, 'by-digest')
    const after = cacheOnly.wire.exchanges().slice(before)
    for (const d of upstreamBlobs) {
      t.equal(
        after.filter((x) => x.method === 'GET' && x.url === `/v2/${repo}/blobs/${d}?ns=gcr.io` && x.status === 200).length,
        2,
        `blob ${d.slice(0, 19)}… served by Ferry to both pulls`,
      )
    }
    t.ok(
      after.some((x) => x.method === 'HEAD' && x.url === `/v2/${repo}/manifests/${upstreamImage.digest}?ns=gcr.io` && x.status === 200),
      'HEAD by digest answered 200',
    )
    t.ok(
      after.some((x) => x.method === 'HEAD' && x.url === `/v2/${repo}/manifests/${tag}?ns=gcr.io` && x.status === 200),
      'HEAD by tag answered 200',
    )
    // tagTtl 0: the by-tag lookup revalidated against the dead upstream, and Ferry fell back.
    const revalidationFailed = (): boolean => cacheOnly.ferry.logs().includes('"msg":"tag revalidation failed, serving cached digest"')
    t.ok(
      await eventually(revalidationFailed, { message: 'the failed revalidation logged' }),
      'Ferry logged: tag revalidation failed, serving cached digest',
    )
  })

  t.test('timing', async (t) => {
    t.comment(`whole file so far: ${Date.now() - started} ms`)
    t.end()
  })
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
