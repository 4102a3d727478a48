// A real `ferry serve` process killed (SIGKILL) in the middle of two server-side imports, then
// started again on the same storage: the import whose body was being sent fails cleanly with
// nothing tagged (its sender is gone), the one reading an s3:// object resumes and completes.
// The S3 read is held part-way by a gate proxy in front of s3rver, so "mid-import" needs no timing.
import { request as httpRequest } from 'node:http'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import t from 'tap'
import { buildBundles } from '../helpers/bundles.js'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { startGateProxy } from '../helpers/gate-proxy.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { startS3Server } from '../helpers/s3-server.js'
import { missingTools } from '../helpers/tools.js'

interface Status {
  id: string
  namespace: string
  state: string
  bytesRead: number
  error?: string
}

const auth = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`

const missing = missingTools('skopeo', 'umoci', 'xz', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `imports restart e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-import-restart-'))
  const processes: FerryProcess[] = []
  t.teardown(async () => {
    for (const ferry of processes) {
      if (!t.passing()) t.comment(`ferry output (tail):\n${ferry.logs().slice(-4000)}`)
      await ferry.stop()
    }
    await rm(work, { recursive: true, force: true })
  })
  const bundles = await buildBundles(join(work, 'bundles'))
  const body = await readFile(bundles.ociTar)
  const s3 = await startS3Server('bundles')
  t.teardown(() => s3.close())
  const client = new S3Client({ ...s3.driverOptions(), region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true })
  t.teardown(() => client.destroy())
  await client.send(new PutObjectCommand({ Bucket: 'bundles', Key: 'site/held.tar', Body: body }))
  const gate = await startGateProxy(s3.endpoint, 'site/held.tar', Math.floor(body.length / 2))
  t.teardown(() => gate.close())

  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { admin: 'admin-pw' })
  const start = async (): Promise<FerryProcess> => {
    const ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', join(work, 'data'), '--htpasswd', htpasswd], {
      env: {
        // s3:// import sources are read with storage.s3's connection settings (through the gate).
        FERRY_STORAGE_S3_ENDPOINT: gate.url,
        FERRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
        FERRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
        FERRY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
        FERRY_STORAGE_S3_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      },
    })
    processes.push(ferry)
    return ferry
  }
  const list = async (ferry: FerryProcess): Promise<Status[]> =>
    ((await (await fetch(`${ferry.url}/ferry/v1/imports`, { headers: { authorization: auth } })).json()) as { imports: Status[] }).imports
  const tagged = async (ferry: FerryProcess, repo: string): Promise<boolean> =>
    (await fetch(`${ferry.url}/v2/${repo}/manifests/2.0`, { method: 'HEAD', headers: { authorization: auth } })).status === 200

  await t.test('killed mid-import: a streamed body fails cleanly, an s3:// import resumes', async (t) => {
    const first = await start()
    // A body sent half-way, and held there.
    const request = httpRequest(`${first.url}/ferry/v1/imports?namespace=ns-body`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
    })
    request.on('error', () => undefined)
    request.write(body.subarray(0, Math.floor(body.length / 2)))
    const fromS3 = await fetch(`${first.url}/ferry/v1/imports?namespace=ns-s3`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/json' },
      body: JSON.stringify({ source: 's3://bundles/site/held.tar' }),
    })
    t.equal(fromS3.status, 202)
    await gate.holding
    await eventually(async () => (await list(first)).find((i) => i.namespace === 'ns-body' && i.bytesRead > 0))

    process.kill(first.pid, 'SIGKILL')
    await first.stop()
    request.destroy()
    gate.release()

    const second = await start()
    const body1 = await eventually(async () => (await list(second)).find((i) => i.namespace === 'ns-body' && i.state === 'failed'), {
      timeoutMs: 60_000,
    })
    t.match(body1.error, /interrupted by a restart/)
    t.notOk(await tagged(second, 'ns-body/x/multi'), 'the interrupted body import tagged nothing')
    const resumed = await eventually(async () => (await list(second)).find((i) => i.namespace === 'ns-s3' && i.state === 'done'), {
      timeoutMs: 60_000,
      message: 'the s3:// import resumed and finished',
    })
    t.equal(resumed.bytesRead, body.length)
    t.ok(await tagged(second, 'ns-s3/x/multi'), 'the resumed import tagged its image')

    const again = await fetch(`${second.url}/ferry/v1/imports?namespace=ns-body`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/octet-stream' },
      body,
    })
    t.equal(again.status, 202)
    t.equal(((await again.json()) as Status).state, 'done', 'sent again, the bundle lands')
    t.ok(await tagged(second, 'ns-body/x/multi'))
  })
}
