// Reading bundles of every supported shape without pushing (a dry run of the real importer):
// formats and compressions are found from the bytes, images are named from the bundle, OCI
// inputs keep their digests, legacy docker saves get a deterministic manifest, and broken
// bundles (truncated, corrupt blob, not an archive) are refused naming the file.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BundlePush } from '../../src/bundle/importer.js'
import type { PushReport } from '../../src/bundle/results.js'
import { buildBundles, names, truncated, type Bundles } from '../helpers/bundles.js'
import { blobPath } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const missing = missingTools('skopeo', 'umoci', 'xz', 'zstd', 'bzip2')
if (missing.length > 0) {
  t.plan(0, `bundle reading skipped: ${missing.join(', ')} not on PATH`)
} else {
  const work = await mkdtemp(join(tmpdir(), 'ferry-bundle-read-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const bundles = await buildBundles(work)
  await main(bundles, work)
}

async function plan(source: string): Promise<PushReport> {
  return new BundlePush({ source, namespace: 'ns', concurrency: 4, keepGoing: true }).run()
}

function summary(
  report: PushReport,
): Array<{ source: string | undefined; destination: string; digest: string | undefined; error?: string }> {
  return report.images.map((i) => ({
    source: i.source,
    destination: i.destination,
    digest: i.digest,
    ...(i.error ? { error: i.error } : {}),
  }))
}

async function main(bundles: Bundles, work: string): Promise<void> {
  const multi = { source: names.multi, destination: 'ns/x/multi:2.0', digest: bundles.index.digest }

  t.test('an oci-archive, plain and compressed (gzip, xz, zstd, bzip2), is found by its bytes', async (t) => {
    for (const file of [bundles.ociTar, bundles.ociTarGz, bundles.ociTarXz, bundles.ociTarZst, bundles.ociTarBz2]) {
      // A misleading name proves the name is not consulted.
      const renamed = join(work, `renamed-${file.split('.').pop()}.zip`)
      await cp(file, renamed)
      const report = await plan(renamed)
      t.equal(report.fatal, undefined, `${file}: readable`)
      t.same(summary(report), [multi], `${file}: the whole index, digest kept`)
    }
  })

  t.test('an OCI layout folder with two images', async (t) => {
    const report = await plan(bundles.ociFolder)
    t.same(summary(report), [multi, { source: names.single, destination: 'ns/x/single:1.0', digest: bundles.amd64.digest }])
  })

  t.test('a legacy docker save gets one Docker manifest, the same every time', async (t) => {
    const first = await plan(bundles.dockerArchive)
    const second = await plan(bundles.dockerArchive)
    t.equal(first.images.length, 1)
    const image = first.images[0]!
    t.equal(image.source, names.legacy)
    t.equal(image.destination, 'ns/anthos-baremetal-release/foo:1.8.0', 'source host dropped, path kept, under the namespace')
    t.match(image.digest, /^sha256:[0-9a-f]{64}$/)
    t.not(image.digest, bundles.amd64.digest, 'its layers are uncompressed, so the digest is new')
    t.equal(second.images[0]!.digest, image.digest, 'deterministic')
  })

  t.test('a Docker 25 save: OCI layout inside, named from manifest.json, digest kept', async (t) => {
    const report = await plan(bundles.docker25Tar)
    t.same(summary(report), [{ source: names.docker25, destination: 'ns/x/d25:1.0', digest: bundles.amd64.digest }])
  })

  t.test('a Zarf-shaped package: the images/ layout inside a .tar.zst, named by base.name; components passed over', async (t) => {
    const report = await plan(bundles.zarfPackage)
    t.equal(report.fatal, undefined)
    t.same(summary(report), [{ source: names.zarf, destination: 'ns/stefanprodan/podinfo:6.4.0', digest: bundles.amd64.digest }])
  })

  t.test('a tar of archives is read recursively; files that are no archive are passed over', async (t) => {
    const report = await plan(bundles.nestedTar)
    t.equal(report.fatal, undefined)
    const found = report.images.map((i) => [i.source, i.archive.replace(`${bundles.nestedTar}!/`, '')]).sort()
    t.same(found, [
      [names.legacy, 'images/legacy.tar.xz'],
      [names.single, 'images/single.tar.zst'],
    ])
    t.equal(report.images.find((i) => i.source === names.single)?.digest, bundles.amd64.digest)
  })

  t.test('images without a name (a ref.name that is only a tag) are named from their digest', async (t) => {
    const report = await plan(bundles.layout)
    t.equal(report.images.length, 3)
    for (const image of report.images) {
      t.equal(image.source, undefined)
      t.equal(image.destination, `ns/unnamed:sha256-${image.digest!.slice('sha256:'.length)}`)
    }
    t.ok(report.images.some((i) => i.digest === bundles.index.digest))
  })

  t.test('a truncated .tar.gz is refused, naming the file', async (t) => {
    const cut = await truncated(bundles.ociTarGz, 0.6)
    const report = await plan(cut)
    t.match(report.fatal, `${cut}: gzip data is corrupt or truncated`)
    t.same(report.images, [])
  })

  t.test('a truncated plain tar and a truncated zstd are refused too', async (t) => {
    for (const file of [bundles.ociTar, bundles.ociTarZst]) {
      const cut = await truncated(file, 0.6)
      const report = await plan(cut)
      t.match(report.fatal, cut, `${file}: the error names the file`)
    }
  })

  t.test('something that is no archive is refused', async (t) => {
    const file = join(work, 'notes.tar')
    await writeFile(file, 'just text\n'.repeat(100))
    t.match((await plan(file)).fatal, `${file}: not a bundle`)
  })

  t.test('a blob whose bytes do not match its digest fails the images that need it, naming file and image', async (t) => {
    const folder = join(work, 'corrupt-folder')
    await cp(bundles.ociFolder, folder, { recursive: true })
    // A layer only the arm64 image has: the index fails, the single amd64 image does not.
    const layer = bundles.arm64.manifest.layers[0]!
    await writeFile(blobPath(folder, layer.digest), Buffer.alloc(layer.size, 7))
    const tar = join(work, 'corrupt.tar')
    await run('tar', ['-cf', tar, '-C', folder, '.'])
    const report = await plan(tar)
    t.equal(report.fatal, undefined)
    const [broken, fine] = report.images
    t.equal(broken!.source, names.multi)
    t.match(broken!.error, `${tar}!/blobs/sha256/${layer.digest.slice(7)}: content does not match its digest`)
    t.equal(fine!.source, names.single)
    t.equal(fine!.error, undefined)
  })
}
