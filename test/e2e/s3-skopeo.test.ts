// skopeo against `ferry serve` as a real process on S3 storage (s3rver in this process), set up
// the way an operator would: storage.driver and storage.s3.* from FERRY_STORAGE_* variables.
// A multi-layer image with a layer larger than one 8 MiB part is pushed, listed and pulled back
// byte-exact; Ferry's start-up line names the bucket and never the secret.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import {
  blobPath,
  buildImage,
  gcLayout,
  initLayout,
  readBlob,
  sha256File,
  tagDescriptor,
  type ImageManifest,
} from '../helpers/oci-layout.js'
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js'
import { missingTools, run } from '../helpers/tools.js'

const KiB = 1024
const MiB = 1024 * KiB

const missing = missingTools('skopeo', 'umoci', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `skopeo on S3 skipped: ${missing.join(' and ')} not found on PATH (apt-get install skopeo umoci apache2-utils)`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-s3-'))
  let s3: S3TestServer | undefined
  let ferry: FerryProcess | undefined
  t.teardown(async () => {
    if (ferry && !t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-8000)}`)
    await ferry?.stop()
    await s3?.close()
    await rm(work, { recursive: true, force: true })
  })
  s3 = await startS3Server('ferry-e2e')
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { pusher: 'pusher-pw' })
  ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--htpasswd', htpasswd, '--anonymous-pull', 'e2e/**'], {
    env: {
      FERRY_STORAGE_DRIVER: 's3',
      FERRY_STORAGE_S3_BUCKET: s3.bucket,
      FERRY_STORAGE_S3_PREFIX: 'registry',
      FERRY_STORAGE_S3_ENDPOINT: s3.endpoint,
      FERRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
      FERRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
      FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'secret-never-logged',
      FERRY_STORAGE_S3_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    },
  })
  const { host } = ferry
  const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 180_000 })

  const layout = join(work, 'layout')
  await initLayout(layout)
  await buildImage(layout, 'v1', { layerSizes: [12 * MiB, 64 * KiB, 1 * KiB], architecture: 'amd64' }, join(work, 'scratch'))
  await gcLayout(layout)
  const v1 = await tagDescriptor(layout, 'v1')
  const manifest = JSON.parse((await readBlob(layout, v1.digest)).toString('utf8')) as ImageManifest

  t.test('the start-up line names the bucket, never the secret', async (t) => {
    const started = ferry!
      .logs()
      .split('\n')
      .find((line) => line.includes('"storage ready"'))
    t.match(started, /"driver":"s3".*"bucket":"ferry-e2e"/)
    t.notMatch(ferry!.logs(), /secret-never-logged/)
  })

  t.test('skopeo pushes, lists and pulls back byte-exact', async (t) => {
    t.ok(
      manifest.layers.some((l) => l.size > 8 * MiB),
      'a layer larger than one part',
    )
    await skopeo(
      'copy',
      '--preserve-digests',
      '--dest-creds',
      'pusher:pusher-pw',
      '--dest-tls-verify=false',
      `oci:${layout}:v1`,
      `docker://${host}/e2e/s3-image:v1`,
    )
    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${host}/e2e/s3-image`)).stdout) as { Tags: string[] }
    t.same(tags.Tags, ['v1'])

    const pulled = join(work, 'pulled')
    await skopeo('copy', '--preserve-digests', '--src-tls-verify=false', `docker://${host}/e2e/s3-image:v1`, `oci:${pulled}:v1`)
    const back = await tagDescriptor(pulled, 'v1')
    t.equal(back.digest, v1.digest, 'the manifest digest')
    for (const d of [manifest.config, ...manifest.layers]) {
      t.equal(await sha256File(blobPath(pulled, d.digest)), d.digest, `blob ${d.digest.slice(0, 19)} hashes to its digest`)
      t.ok((await readBlob(pulled, d.digest)).equals(await readBlob(layout, d.digest)), `blob ${d.digest.slice(0, 19)} equals the original`)
    }
  })
}
