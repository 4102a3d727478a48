// Scrub through the real server and real files: a cached layer and a cached manifest corrupted on
// disk are found, quarantined, and fetched again from the upstream on the next pull, which
// returns the right bytes; a corrupted pushed layer is reported as lost. `ferry scrub` (the CLI)
// finds the same on a stopped store.
import { randomBytes } from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runCli, type CliIo } from '../../src/cli/main.js'
import { distributionUnavailable } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startSeededMirror } from '../helpers/seeded-mirror.js'
import { seedImage, sha256 } from '../helpers/seed.js'

const unavailable = distributionUnavailable()
if (unavailable) t.plan(0, unavailable)
else t.test('scrub quarantines corrupt content; the mirror fetches it again, a pushed one is reported lost', main)

const accept = 'application/vnd.oci.image.manifest.v1+json'

async function main(t: Test): Promise<void> {
  const { upstream, ferry, seeder } = await startSeededMirror(t)
  const blobFile = (digest: string): string => join(ferry.root, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data')
  const layerGets = (digest: string): number => upstream.requests().filter((r) => r.method === 'GET' && r.path.endsWith(digest)).length

  const image = await seedImage(upstream.url, 'lib/app', 'v1', { layers: [randomBytes(400_000)] })
  const layer = image.layers[0]!
  const pull = async (): Promise<boolean> => {
    const manifest = await fetch(`${ferry.url}/v2/lib/app/manifests/v1`, { headers: { accept } })
    if (sha256(Buffer.from(await manifest.arrayBuffer())) !== image.manifest.digest) return false
    const res = await fetch(`${ferry.url}/v2/lib/app/blobs/${layer.digest}`)
    return sha256(Buffer.from(await res.arrayBuffer())) === layer.digest
  }
  t.ok(await pull(), 'first pull, through the upstream')
  await eventually(() => stat(blobFile(layer.digest)))
  const pushed = await seedImage(ferry.url, 'team/own', 'v1', { layers: [randomBytes(100_000)], auth: seeder })

  // Bit rot: one byte of the cached layer, the cached manifest and the pushed layer flipped.
  for (const digest of [layer.digest, image.manifest.digest, pushed.layers[0]!.digest]) {
    const bytes = await readFile(blobFile(digest))
    bytes[100] = bytes[100]! ^ 0xff
    await writeFile(blobFile(digest), bytes)
  }

  // The CLI on the same storage (dry run: it reports, the server's scrub moves).
  const out: string[] = []
  const io: CliIo = {
    stdout: { write: (s: string) => out.push(s) },
    stderr: { write: (s: string) => out.push(s) },
    env: {},
    exit: () => {},
    onSignal: () => {},
    finish: () => {},
  }
  await runCli(['node', 'ferry', 'scrub', '--dry-run', '--storage', ferry.root], io)
  t.match(out.join(''), new RegExp(`corrupt ${layer.digest} \\(cached`), 'ferry scrub names the cached layer')
  t.match(out.join(''), new RegExp(`corrupt ${pushed.layers[0]!.digest} \\(pushed.*LOST`), 'and the pushed one as lost')

  const gets = layerGets(layer.digest)
  const report = await ferry.composed.lifecycle.scrub(false)
  t.same(
    report.corrupt.map((c) => [c.digest, c.kind]).sort(),
    [
      [layer.digest, 'cached'],
      [image.manifest.digest, 'cached'],
      [pushed.layers[0]!.digest, 'pushed'],
    ].sort(),
  )
  t.rejects(stat(blobFile(layer.digest)), 'the corrupt blob left the store')
  t.ok(await stat(join(ferry.root, 'lifecycle/quarantine/sha256', layer.digest.slice(7))), 'into quarantine')
  t.ok(
    ferry.logs.some((line) => line.includes('pushed content is corrupt and lost') && line.includes(pushed.layers[0]!.digest)),
    'the lost pushed layer is logged',
  )

  t.ok(await pull(), 'the next pull gets the right bytes')
  t.equal(layerGets(layer.digest), gets + 1, 'fetched from the upstream again')
  await eventually(() => stat(blobFile(layer.digest)), { message: 'the layer is cached again' })
  t.equal(sha256(await readFile(blobFile(image.manifest.digest))), image.manifest.digest, 'the manifest is stored again, whole')
  const again = await ferry.composed.lifecycle.scrub(false)
  t.same(again.corrupt, [], 'a second scrub finds nothing')
  const metrics = await fetch(`${ferry.url}/metrics`).then((r) => r.text())
  t.match(metrics, /^ferry_scrub_corrupt_total\{kind="pushed"\} 1$/m)
}
