// Online garbage collection through the real server: GC runs again and again while images are
// pushed and mirrored images pulled; nothing referenced is lost (every image still pulls byte for
// byte), while blobs of a deleted manifest, older than the grace period, and an abandoned upload
// session go. An untagged but linked manifest is kept. The dry run lists and deletes nothing; the
// endpoint is for admins only.
import { randomBytes } from 'node:crypto'
import { stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { distributionUnavailable } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startSeededMirror } from '../helpers/seeded-mirror.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'

const unavailable = distributionUnavailable()
if (unavailable) t.plan(0, unavailable)
else t.test('GC beside pushes and pulls keeps everything referenced and sweeps the rest', main)

const accept = 'application/vnd.oci.image.manifest.v1+json'

async function main(t: Test): Promise<void> {
  // Short enough to wait out (a blob this process saw written is kept that long whatever its file time).
  const { upstream, ferry, seeder } = await startSeededMirror(t, (config) => {
    config.maintenance.gc.grace = 3000
  })
  const auth = { authorization: `Basic ${Buffer.from(`${seeder.username}:${seeder.password}`).toString('base64')}` }
  const blobFile = (digest: string): string => join(ferry.root, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data')
  const longAgo = new Date(Date.now() - 2 * 86_400_000)

  // Garbage: an image whose manifest was deleted, its files older than the grace period.
  const garbage = await seedImage(ferry.url, 'team/old', 'v1', { layers: [randomBytes(200_000)], auth: seeder })
  const deleted = await fetch(`${ferry.url}/v2/team/old/manifests/${garbage.manifest.digest}`, { method: 'DELETE', headers: auth })
  t.equal(deleted.status, 202)
  const garbageDigests = [garbage.manifest.digest, garbage.config.digest, garbage.layers[0]!.digest]
  for (const digest of garbageDigests) await utimes(blobFile(digest), longAgo, longAgo)
  // Kept although old: an untagged manifest is still linked.
  const untagged = await seedImage(ferry.url, 'team/untagged', 'x', { layers: [randomBytes(100_000)], auth: seeder, untagged: true })
  for (const digest of [untagged.manifest.digest, untagged.layers[0]!.digest]) await utimes(blobFile(digest), longAgo, longAgo)
  // An abandoned upload session.
  const started = await fetch(`${ferry.url}/v2/team/old/blobs/uploads/`, { method: 'POST', headers: auth })
  const session = new URL(started.headers.get('location')!, ferry.url).pathname.split('/').pop()!
  await started.arrayBuffer()
  const sessionData = join(ferry.root, 'repositories/team/old/_uploads', session, 'data')
  await utimes(sessionData, longAgo, longAgo)

  const anonymous = await fetch(`${ferry.url}/ferry/v1/gc`, { method: 'POST' })
  t.equal(anonymous.status, 401, 'the GC endpoint wants an admin')
  await anonymous.arrayBuffer()
  const dryRun = async () => {
    const dry = await fetch(`${ferry.url}/ferry/v1/gc?dryRun=true`, { method: 'POST', headers: auth })
    if (dry.status !== 200) throw new Error(`dry run: ${dry.status}`)
    return (await dry.json()) as { blobs: Array<{ digest: string }>; bytes: number; uploads: string[] }
  }
  // Once the grace period since the pushes has passed.
  const dryReport = await eventually(async () => {
    const report = await dryRun()
    return report.blobs.length >= garbageDigests.length ? report : undefined
  })
  t.same(dryReport.blobs.map((b) => b.digest).sort(), [...garbageDigests].sort(), 'the dry run lists exactly the garbage')
  t.equal(dryReport.uploads.length, 1, 'and the abandoned session')
  for (const digest of garbageDigests) t.ok(await stat(blobFile(digest)), 'a dry run deletes nothing')

  const mirrored: SeededImage[] = []
  for (let i = 0; i < 2; i++) mirrored.push(await seedImage(upstream.url, `lib/m${i}`, 'v1', { layers: [randomBytes(300_000)] }))

  // Pushes and pulls while GC runs again and again.
  const pushes = Array.from({ length: 6 }, (_, i) =>
    seedImage(ferry.url, `team/new${i}`, 'v1', { layers: [randomBytes(150_000), randomBytes(50_000)], auth: seeder }),
  )
  const pulls = mirrored.map((image, i) => pullThrough(ferry.url, `lib/m${i}`, image))
  let runs = 0
  const collecting = (async () => {
    for (let i = 0; i < 5; i++) {
      await ferry.composed.lifecycle.gc(false)
      runs++
    }
  })()
  const [pushed] = await Promise.all([Promise.all(pushes), Promise.all(pulls), collecting])
  t.equal(runs, 5)

  for (const [i, image] of pushed.entries())
    t.ok(await pullThrough(ferry.url, `team/new${i}`, image, auth), `pushed team/new${i} pulls whole`)
  for (const [i, image] of mirrored.entries()) t.ok(await pullThrough(ferry.url, `lib/m${i}`, image), `mirrored lib/m${i} pulls whole`)
  t.ok(await pullThrough(ferry.url, 'team/untagged', untagged, auth, untagged.manifest.digest), 'the untagged manifest is kept')
  for (const digest of garbageDigests) t.rejects(stat(blobFile(digest)), `garbage ${digest.slice(0, 19)} is gone`)
  t.rejects(stat(sessionData), 'the abandoned upload session is gone')
  const metrics = await fetch(`${ferry.url}/metrics`).then((r) => r.text())
  t.match(metrics, /^ferry_gc_runs_total\{result="ok"\} \d+$/m, 'GC runs are counted')
  t.match(metrics, /^ferry_gc_freed_bytes_total [1-9]\d*$/m, 'and the bytes they freed')
}

/** GETs the manifest and every blob; true when all match their digests. */
async function pullThrough(
  base: string,
  repo: string,
  image: SeededImage,
  headers: Record<string, string> = {},
  reference = 'v1',
): Promise<boolean> {
  const manifest = await fetch(`${base}/v2/${repo}/manifests/${reference}`, { headers: { ...headers, accept } })
  if (manifest.status !== 200 || sha256(Buffer.from(await manifest.arrayBuffer())) !== image.manifest.digest) return false
  for (const blob of [image.config, ...image.layers]) {
    const res = await fetch(`${base}/v2/${repo}/blobs/${blob.digest}`, { headers })
    if (res.status !== 200 || sha256(Buffer.from(await res.arrayBuffer())) !== blob.digest) return false
  }
  return true
}
