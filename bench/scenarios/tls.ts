// Scenario 12: HTTPS (issue #18). Most sites run the mirror over TLS, where sendfile(2) does not
// apply. Ferry and distribution serve the same self-signed certificate (ECDSA P-256) and the same
// content, pushed over plain HTTP before both restart with TLS on the same storage. Measured over
// HTTP/1.1 and HTTP/2 (containerd's Go client takes h2 whenever the server offers it): one client
// on a 1 GiB blob, 16 clients on 16 × 64 MiB (curl --http1.1 / --http2, one process each), and
// a warm manifest GET by tag at 64 connections (h2load, one request in flight per connection).
// The protocol each client actually spoke is reported: a server that does not offer h2 in ALPN
// is answered over HTTP/1.1 whatever the client prefers.
import { join } from 'node:path'
import { mediaTypes } from '../../src/core/media-types.js'
import { run } from '../../test/helpers/tools.js'
import { randomBlob } from '../lib/blobs.js'
import { h2load } from '../lib/h2load.js'
import { concurrentDownloads, pushStreaming } from '../lib/http.js'
import { pushImage, smallImage } from '../lib/images.js'
import { startDistribution, startFerry, type Server, type ServingCertificate } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, GiB, MB, measured, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const repo = 'bench/tls'
const tagAccept = [mediaTypes.dockerManifest, mediaTypes.dockerManifestList, mediaTypes.ociManifest, mediaTypes.ociIndex, '*/*'].join(', ')

interface Target {
  label: string
  server: Server
  http1: boolean
}

/** A self-signed certificate for 127.0.0.1, which the curl clients are given as their CA. */
async function selfSigned(dir: string): Promise<ServingCertificate> {
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  ])
  return { cert, key }
}

export const tls: Scenario = {
  name: 'tls',
  title: '12. HTTPS: cached downloads and manifests over HTTP/1.1 and HTTP/2',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const certificate = await selfSigned(ctx.dir)
    const image = smallImage('tls-image')
    const dirs = { ferry: join(ctx.dir, 'ferry'), distribution: join(ctx.dir, 'distribution') }

    // Seeded over plain HTTP (the harness's pushes need no CA), then restarted with TLS.
    const single = { seed: 'tls-single', size: s.singleBlobBytes, digest: '' }
    const many = Array.from({ length: s.concurrentClients }, (_, i) => ({ seed: `tls-${i}`, size: s.concurrentBlobBytes, digest: '' }))
    for (const [name, dir] of [
      ['ferry', dirs.ferry],
      ['distribution', dirs.distribution],
    ] as const) {
      const plain = name === 'ferry' ? await startFerry({ name, dir }) : await startDistribution({ name, dir })
      progress(`tls: seeding ${name}`)
      await pushImage(plain, repo, 'v1', image)
      for (const blob of [single, ...many]) blob.digest = await pushStreaming(plain, repo, randomBlob(blob.seed, blob.size))
      await plain.stop()
    }
    const ferry = await startFerry({ name: 'ferry', dir: dirs.ferry, tls: { ...certificate, http2: true } })
    const distribution = await startDistribution({ name: 'distribution', dir: dirs.distribution, tls: certificate })
    const targets: Target[] = [
      { label: 'ferry h1', server: ferry, http1: true },
      { label: 'ferry h2', server: ferry, http1: false },
      { label: 'distribution h1', server: distribution, http1: true },
      { label: 'distribution h2', server: distribution, http1: false },
    ]
    const client = (t: Target): Server => ({ ...t.server, curlArgs: [...t.server.curlArgs, t.http1 ? '--http1.1' : '--http2'] })
    const blobPath = (digest: string): string => `/v2/${repo}/blobs/${digest}`
    const manifestLoad = (t: Target, seconds: number) =>
      h2load({
        url: `${t.server.url}/v2/${repo}/manifests/v1`,
        headers: { ...t.server.headers, accept: tagAccept },
        connections: s.manifestConnections,
        seconds,
        http1: t.http1,
      })

    progress('tls: warm-up')
    const spoken = new Map<string, { download: string; manifests: string }>()
    for (const t of targets) {
      const download = await concurrentDownloads(client(t), [blobPath(many[0]!.digest)], 1, many[0]!.size)
      const manifests = await manifestLoad(t, 1)
      spoken.set(t.label, { download: download.httpVersions, manifests: manifests.protocol })
    }

    const samples = new Samples()
    let bad = 0
    for (let round = 0; round < s.rounds; round++) {
      for (const t of alternate(targets, round)) {
        progress(`tls: round ${round + 1}/${s.rounds}: ${t.label}`)
        const one = await quietly(`${t.label} 1 client`, () =>
          measured(t.server.pid, () => concurrentDownloads(client(t), [blobPath(single.digest)], 1, single.size)),
        )
        samples.add(t.label, 'single MB/s', one.value.bytes / MB / one.value.seconds)
        samples.add(t.label, 'single cpu s/GiB', one.cpuSeconds / (one.value.bytes / GiB))
        const all = await quietly(`${t.label} ${s.concurrentClients} clients`, () =>
          measured(t.server.pid, () =>
            concurrentDownloads(
              client(t),
              many.map((b) => blobPath(b.digest)),
              s.concurrentClients,
              s.concurrentBlobBytes,
            ),
          ),
        )
        samples.add(t.label, 'concurrent MB/s', all.value.bytes / MB / all.value.seconds)
        samples.add(t.label, 'concurrent cpu s/GiB', all.cpuSeconds / (all.value.bytes / GiB))
        samples.add(t.label, 'concurrent rss MiB', all.peakRssBytes / MiB)
        const manifests = await quietly(`${t.label} manifests`, () => measured(t.server.pid, () => manifestLoad(t, s.manifestSeconds)))
        samples.add(t.label, 'manifest req/s', manifests.value.requestsPerSecond)
        samples.add(t.label, 'manifest mean ms', manifests.value.meanMs)
        samples.add(t.label, 'manifest cpu ms/1000', (manifests.cpuSeconds * 1e6) / (manifests.value.requestsPerSecond * s.manifestSeconds))
        samples.add(t.label, 'manifest rss MiB', manifests.peakRssBytes / MiB)
        if (manifests.value.bad > 0) {
          bad += manifests.value.bad
          progress(`tls: ${t.label} manifests: ${manifests.value.bad} failed or non-2xx`)
        }
      }
    }
    for (const server of [ferry, distribution]) await server.stop()

    const labels = targets.map((t) => t.label)
    const m = (label: string, metric: string): number => samples.median(label, metric)
    const row = (title: string, metric: string, digits: number): string[] => [
      title,
      ...labels.map((l) => fmt(m(l, metric), digits)),
      ratio(m('ferry h1', metric), m('distribution h1', metric)),
      ratio(m('ferry h2', metric), m('distribution h2', metric)),
      ratio(m('ferry h2', metric), m('ferry h1', metric)),
    ]
    const singleSize = `${fmt(s.singleBlobBytes / MiB)} MiB`
    const concurrentSize = `${s.concurrentClients} × ${fmt(s.concurrentBlobBytes / MiB)} MiB`
    const markdown = [
      table(
        ['HTTPS, median', ...labels, 'ferry / distribution, h1', 'ferry / distribution, h2', 'ferry h2 / ferry h1'],
        [
          row(`1 client, ${singleSize}: MB/s`, 'single MB/s', 0),
          row(`${concurrentSize}: aggregate MB/s`, 'concurrent MB/s', 0),
          row('server CPU s per GiB, 1 client', 'single cpu s/GiB', 2),
          row(`server CPU s per GiB, ${s.concurrentClients} clients`, 'concurrent cpu s/GiB', 2),
          row(`server peak RSS MiB, ${s.concurrentClients} clients`, 'concurrent rss MiB', 0),
          row(`manifest GET by tag, ${s.manifestConnections} connections: req/s`, 'manifest req/s', 0),
          row('manifest GET by tag: mean ms per request', 'manifest mean ms', 1),
          row('manifest GET by tag: server CPU ms per 1,000 requests', 'manifest cpu ms/1000', 0),
          row('server peak RSS MiB, manifest load', 'manifest rss MiB', 0),
        ],
      ),
      '',
      `Protocol spoken (curl's download / h2load's manifests): ${labels.map((l) => `${l}: ${spoken.get(l)?.download} / ${spoken.get(l)?.manifests}`).join('; ')}.`,
      bad > 0 ? `**${bad} manifest requests failed** (see the progress log).` : 'Every manifest request answered 2xx.',
    ].join('\n')
    const held = (protocol: 'h1' | 'h2', metric: string, higherIsBetter: boolean): boolean =>
      higherIsBetter
        ? m(`ferry ${protocol}`, metric) >= m(`distribution ${protocol}`, metric)
        : m(`ferry ${protocol}`, metric) <= m(`distribution ${protocol}`, metric)
    const checks = (['h1', 'h2'] as const).flatMap((protocol) => [
      {
        target: `HTTPS ${protocol}: cached downloads ≥ 1.0× distribution (1 and ${s.concurrentClients} clients)`,
        holds: held(protocol, 'single MB/s', true) && held(protocol, 'concurrent MB/s', true),
        measured: `${ratio(m(`ferry ${protocol}`, 'single MB/s'), m(`distribution ${protocol}`, 'single MB/s'))} / ${ratio(m(`ferry ${protocol}`, 'concurrent MB/s'), m(`distribution ${protocol}`, 'concurrent MB/s'))}`,
      },
      {
        target: `HTTPS ${protocol}: CPU per GiB ≤ distribution's (1 and ${s.concurrentClients} clients)`,
        holds: held(protocol, 'single cpu s/GiB', false) && held(protocol, 'concurrent cpu s/GiB', false),
        measured: `${ratio(m(`ferry ${protocol}`, 'single cpu s/GiB'), m(`distribution ${protocol}`, 'single cpu s/GiB'))} / ${ratio(m(`ferry ${protocol}`, 'concurrent cpu s/GiB'), m(`distribution ${protocol}`, 'concurrent cpu s/GiB'))}`,
      },
    ])
    return { markdown, checks, json: { samples: samples.toJSON(), spoken: Object.fromEntries(spoken) } }
  },
}
