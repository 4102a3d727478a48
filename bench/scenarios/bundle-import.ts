// Scenario: a multi-image bundle loaded into Ferry two ways, each round into a fresh Ferry on
// empty storage: `ferry push images` (the CLI, through the OCI API) and the server-side import
// (`POST /ferry/v1/imports`, the bundle streamed as the request body, blobs written straight into
// storage). The bundle is an OCI-layout tar of several images with incompressible layers,
// uncompressed and zstd-compressed. Target (#15): the server import ≥ 1.5× faster than the CLI.
import { spawn } from 'node:child_process'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from '../../test/helpers/tools.js'
import { writeRandomBlob } from '../lib/blobs.js'
import { benchCredentials, startFerry, type Server } from '../lib/processes.js'
import type { BenchContext, Scenario, ScenarioResult } from '../lib/scenario.js'
import { quietly } from '../lib/quiet.js'
import { alternate, fmt, MB, MiB, progress, ratio, Samples, table } from '../lib/stats.js'

const ferryLauncher = fileURLToPath(new URL('../lib/ferry-child.mjs', import.meta.url))
const images = 4
const layersPerImage = 4

export const bundleImport: Scenario = {
  name: 'bundle-import',
  title: 'Bundle import: `ferry push images` vs the server-side import',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const s = ctx.settings
    const total = Number(process.env.BENCH_BUNDLE_MIB ?? (s.quick ? 256 : 1024)) * MiB
    const plain = join(ctx.dir, 'bundle.tar')
    progress(`bundle-import: writing a ${fmt(total / MiB)} MiB bundle of ${images} images`)
    await writeBundle(join(ctx.dir, 'layout'), plain, total)
    const zstd = `${plain}.zst`
    await run('sh', ['-c', `zstd -q -T0 -1 -c "${plain}" > "${zstd}"`], { timeoutMs: 600_000 })
    const bundles = [
      { label: 'uncompressed', file: plain },
      { label: 'zstd', file: zstd },
    ]
    const ways = [
      { name: 'cli', load: (server: Server, file: string, ns: string) => cliPush(server, file, ns) },
      { name: 'server', load: (server: Server, file: string, ns: string) => serverImport(server, file, ns) },
    ]
    const samples = new Samples()
    for (let round = 0; round < s.rounds; round++) {
      for (const bundle of bundles) {
        for (const way of alternate(ways, round)) {
          progress(`bundle-import: round ${round + 1}/${s.rounds}: ${bundle.label} via ${way.name}`)
          let attempt = 0
          const seconds = await quietly(`bundle-import ${way.name}`, async () => {
            const dir = join(ctx.dir, `${way.name}-${bundle.label}-${round}-${attempt++}`)
            const server = await startFerry({ name: 'ferry', dir })
            try {
              const started = performance.now()
              await way.load(server, bundle.file, 'site')
              return (performance.now() - started) / 1000
            } finally {
              await server.stop()
              await rm(dir, { recursive: true, force: true })
            }
          })
          samples.add(way.name, `${bundle.label} s`, seconds)
        }
      }
    }
    const m = (name: string, metric: string): number => samples.median(name, metric)
    const rows = bundles.map((b) => {
      const cli = m('cli', `${b.label} s`)
      const server = m('server', `${b.label} s`)
      return [b.label, fmt(cli, 2), fmt(total / MB / cli), fmt(server, 2), fmt(total / MB / server), ratio(cli, server)]
    })
    const markdown = table(
      [`${fmt(total / MiB)} MiB bundle, ${images} images (median)`, 'ferry push images s', 'MB/s', 'server import s', 'MB/s', 'speed-up'],
      rows,
    )
    const checks = bundles.map((b) => ({
      target: `server import ≥ 1.5× faster than ferry push images (${b.label})`,
      holds: m('cli', `${b.label} s`) >= 1.5 * m('server', `${b.label} s`),
      measured: ratio(m('cli', `${b.label} s`), m('server', `${b.label} s`)),
    }))
    return { markdown, checks, json: samples.toJSON() }
  },
}

async function cliPush(server: Server, file: string, namespace: string): Promise<void> {
  const host = new URL(server.url).host
  const args = [
    ferryLauncher,
    'push',
    'images',
    '--source',
    file,
    '--private-registry',
    `http://${host}/${namespace}`,
    '--username',
    benchCredentials.username,
    '--password',
    benchCredentials.password,
    // Beside the bundle, not in the working folder.
    '--digest-map',
    `${file}.${namespace}.digest-map.json`,
  ]
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`ferry push images exited ${code}: ${stderr.slice(-2000)}`)
}

async function serverImport(server: Server, file: string, namespace: string): Promise<void> {
  // curl, as an operator would send it (README): the body streams from the file with no JS in between.
  const { stdout } = await run(
    'curl',
    [
      '-sS',
      '-X',
      'POST',
      '-T',
      file,
      '-u',
      `${benchCredentials.username}:${benchCredentials.password}`,
      '-H',
      'content-type: application/octet-stream',
      '-w',
      '\n%{http_code}',
      `${server.url}/ferry/v1/imports?namespace=${namespace}`,
    ],
    { timeoutMs: 600_000 },
  )
  const code = stdout.slice(stdout.lastIndexOf('\n') + 1)
  const status = JSON.parse(stdout.slice(0, stdout.lastIndexOf('\n'))) as { state?: string; error?: string }
  if (code !== '202' || status.state !== 'done') throw new Error(`import answered ${code}: ${JSON.stringify(status)}`)
}

/** An OCI layout of `images` images (`bench.local/bundle/img-<i>:1.0`) with random layers, tarred. */
async function writeBundle(layout: string, out: string, total: number): Promise<void> {
  const blobs = join(layout, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const layerSize = Math.floor(total / (images * layersPerImage))
  const writeBlob = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = createHash('sha256').update(bytes).digest('hex')
    await writeFile(join(blobs, hex), bytes)
    return { digest: `sha256:${hex}`, size: bytes.length }
  }
  const manifests = []
  for (let i = 0; i < images; i++) {
    const layers = []
    for (let l = 0; l < layersPerImage; l++) {
      const path = join(blobs, 'tmp')
      const digest = await writeRandomBlob(path, `bundle-${i}-${l}`, layerSize)
      await rename(path, join(blobs, digest.slice('sha256:'.length)))
      layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: layerSize })
    }
    const config = await writeBlob(
      Buffer.from(
        JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }),
      ),
    )
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers,
      }),
    )
    const descriptor = await writeBlob(manifest)
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...descriptor,
      annotations: { 'org.opencontainers.image.ref.name': `bench.local/bundle/img-${i}:1.0` },
    })
  }
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }))
  await run('tar', ['-cf', out, '-C', layout, 'oci-layout', 'blobs', 'index.json'], { timeoutMs: 600_000 })
  await rm(layout, { recursive: true, force: true })
}
