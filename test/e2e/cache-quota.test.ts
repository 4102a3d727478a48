// The cache quota, end to end: images pulled with skopeo through the real server from a CNCF
// distribution upstream fill the cache past cache.maxSize; eviction keeps it within the quota,
// the most recently pulled images survive, a pushed image is untouched, and every image (kept or
// evicted) still pulls completely. The figures (cached bytes vs quota after each pull, images
// evicted, failed pulls) are printed as test comments for the report. With FERRY_TEST_STORAGE=s3
// the same runs on the S3 driver (s3rver).
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { distributionUnavailable } from '../helpers/distribution.js'
import { eventually } from '../helpers/eventually.js'
import { startSeededMirror } from '../helpers/seeded-mirror.js'
import { seedImage, sha256, type SeededImage } from '../helpers/seed.js'
import { missingTools, run } from '../helpers/tools.js'

const MiB = 1024 * 1024
const images = 8
const quota = Math.round(3.5 * MiB)

const unavailable = distributionUnavailable() ?? (missingTools('skopeo').length > 0 ? 'skopeo not found' : undefined)
if (unavailable) t.plan(0, unavailable)
else t.test('a cache filled past its quota by pulls keeps within it, keeps the recent images and the pushed ones', main)

async function main(t: Test): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-quota-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const { upstream, ferry, seeder } = await startSeededMirror(t, (config) => {
    config.cache.maxSize = { bytes: quota }
    config.cache.lowWatermark = 0.9
  })

  const seeded: SeededImage[] = []
  for (let i = 0; i < images; i++) seeded.push(await seedImage(upstream.url, `quota/img${i}`, 'v1', { layers: [randomBytes(MiB)] }))
  const pushed = await seedImage(ferry.url, 'own/app', 'v1', { layers: [randomBytes(MiB)], auth: seeder })

  let failedPulls = 0
  const pull = async (i: number): Promise<void> => {
    const dest = join(work, `pull-${i}-${Date.now()}`)
    try {
      await run('skopeo', ['copy', '--insecure-policy', '--src-tls-verify=false', `docker://${ferry.host}/quota/img${i}:v1`, `dir:${dest}`])
    } catch (err) {
      failedPulls++
      t.fail(`skopeo pull of img${i} failed: ${String(err)}`)
      return
    }
    // Every blob arrived whole: dir: names files by digest hex; the layer's bytes hash to it.
    const layer = seeded[i]!.layers[0]!
    const bytes = await readFile(join(dest, layer.digest.slice('sha256:'.length)))
    if (sha256(bytes) !== layer.digest) {
      failedPulls++
      t.fail(`img${i}: layer bytes do not match`)
    }
    await rm(dest, { recursive: true, force: true })
  }
  const cachedImages = async (): Promise<number[]> => {
    // Read from storage: the registries' metadata answers are reused for a few seconds.
    const inventory = await ferry.composed.lifecycle.inventory()
    const kept: number[] = []
    for (let i = 0; i < images; i++) {
      const repo = inventory.repositories.find((r) => r.name === `_cache/gcr.io/quota/img${i}`)
      if (repo?.manifests.has(seeded[i]!.manifest.digest as never)) kept.push(i)
    }
    return kept
  }

  const figures: string[] = []
  const sequence = [0, 1, 2, 3, 4, 5, 0, 6, 7]
  for (const i of sequence) {
    await pull(i)
    const right = (await ferry.composed.lifecycle.usage()).cachedBytes
    // Eviction runs after a fill is stored; wait for it to settle under the quota.
    const settled = await eventually(
      async () => {
        const usage = await ferry.composed.lifecycle.usage()
        return usage.cachedBytes <= quota ? usage : undefined
      },
      { message: `cache within ${quota} bytes after pulling img${i}` },
    )
    figures.push(
      `pull img${i}: cached ${right} bytes right after, ${settled.cachedBytes} settled (quota ${quota}), pushed ${settled.pushedBytes}`,
    )
  }
  for (const line of figures) t.comment(line)

  const kept = await cachedImages()
  t.comment(`images kept in the cache: ${kept.map((i) => `img${i}`).join(', ')}; evicted ${images - kept.length}`)
  t.ok(kept.length < images, 'eviction removed images')
  // The three most recently pulled fit the quota (3 × ~1 MiB): 7, 6 and the re-pulled 0.
  for (const recent of [7, 6, 0]) t.ok(kept.includes(recent), `recently pulled img${recent} survived`)
  for (const old of [1, 2]) t.notOk(kept.includes(old), `least recently pulled img${old} was evicted`)

  // Pushed content is untouched: every blob still served, from storage.
  for (const blob of [pushed.config, ...pushed.layers]) {
    const get = () =>
      fetch(`${ferry.url}/v2/own/app/blobs/${blob.digest}`, {
        headers: { authorization: `Basic ${Buffer.from(`${seeder.username}:${seeder.password}`).toString('base64')}` },
      })
    const res = await get()
    t.equal(res.status, 200, 'pushed blob still there')
    t.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.digest)
  }

  // Every image still pulls completely: kept ones from the cache, evicted ones from the upstream again.
  for (let i = 0; i < images; i++) await pull(i)
  t.equal(failedPulls, 0, 'no pull failed')
  t.comment(`failed pulls: ${failedPulls}`)
  const left = await readdir(work)
  t.same(left, [], 'pulled copies cleaned up')
}
