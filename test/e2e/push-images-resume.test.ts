// `ferry push images` killed with SIGKILL midway, then run again: the rerun completes and sends
// only what is missing, and removes the spool folder the killed run left. The push runs as the built CLI (dist/) through a small proxy that lets one
// blob upload complete and then holds every later one, so "midway" is a state, not a moment.
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { buildBundles, names } from '../helpers/bundles.js'
import { eventually } from '../helpers/eventually.js'
import { startFerryProcess, type FerryProcess } from '../helpers/ferry-process.js'
import { writeHtpasswd } from '../helpers/htpasswd.js'
import { missingTools } from '../helpers/tools.js'

const ferryBin = fileURLToPath(new URL('../../bin/ferry.js', import.meta.url))

/** Forwards to `target`: the first `passUploads` blob upload PUTs, then holds every later one unanswered. */
async function startUploadGate(target: string, passUploads: number) {
  const to = new URL(target)
  let forwarded = 0
  let answered = 0
  let held = 0
  const server = createServer((req, res) => {
    const isUpload = req.method === 'PUT' && /\/blobs\/uploads\//.test(req.url ?? '')
    // Counted as they arrive: uploads run concurrently, so waiting for answers would let several by.
    if (isUpload && forwarded >= passUploads) {
      held++
      req.resume()
      return
    }
    if (isUpload) forwarded++
    const upstream = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
        answer.once('end', () => {
          if (isUpload && answer.statusCode === 201) answered++
        })
      },
    )
    upstream.once('error', () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    state: () => ({ answered, held }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function pushInProcess(args: string[]): Promise<{ exit: number; stderr: string; summary: Record<string, unknown> | undefined }> {
  const fake = fakeIo()
  // Never the default ./digest-map.json: that would be the checkout's.
  const map = args.includes('--digest-map') ? [] : ['--digest-map', join(tmpdir(), `ferry-digest-map-${process.pid}-${Date.now()}.json`)]
  await runCli(['node', 'ferry', 'push', 'images', '--json', ...args, ...map], fake.io)
  const events = fake
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { exit: fake.exits[0] ?? -1, stderr: fake.stderr(), summary: events.find((e) => e.type === 'summary') }
}

const missing = missingTools('skopeo', 'umoci', 'xz', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `push images resume e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-resume-'))
  let ferry: FerryProcess | undefined
  t.teardown(async () => {
    await ferry?.stop()
    await rm(work, { recursive: true, force: true })
  })
  const bundles = await buildBundles(join(work, 'bundles'))
  const htpasswd = join(work, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { pusher: 'pusher-pw' })
  ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', join(work, 'data'), '--htpasswd', htpasswd])
  const creds = ['--username', 'pusher', '--password', 'pusher-pw']

  t.test('killed with SIGKILL midway, the rerun completes and sends only what is missing', async (t) => {
    // What a complete push uploads: every layer and config once (manifests are not counted).
    const blobs = new Map<string, number>()
    for (const manifest of [bundles.amd64.manifest, bundles.arm64.manifest]) {
      for (const blob of [manifest.config, ...manifest.layers]) blobs.set(blob.digest, blob.size)
    }
    const total = [...blobs.values()].reduce((a, b) => a + b, 0)

    const gate = await startUploadGate(ferry!.url, 1)
    t.teardown(() => gate.close())
    const map = join(work, 'resume-map.json')
    const args = ['--source', bundles.ociTarZst, '--private-registry', `http://${gate.host}/resume`, ...creds, '--digest-map', map]
    const child = spawn(process.execPath, [ferryBin, 'push', 'images', ...args], { stdio: 'ignore' })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    t.teardown(() => void child.kill('SIGKILL'))
    await eventually(() => gate.state().answered >= 1 && gate.state().held >= 1, {
      timeoutMs: 60_000,
      message: 'one upload done, the next held',
    })
    child.kill('SIGKILL')
    await exited
    const spoolOf = async (pid: number | undefined): Promise<string[]> =>
      (await readdir(tmpdir())).filter((name) => name.startsWith(`ferry-push-${pid}-`))
    t.same(await spoolOf(child.pid), [], 'the killed run spooled nothing: its blobs streamed straight out of the bundle')
    // A run killed while it spooled (a docker save's layers named by path) leaves its folder behind.
    await mkdir(join(tmpdir(), `ferry-push-${child.pid}-killed`))

    const rerun = await pushInProcess([...args.slice(0, 2), '--private-registry', `http://${ferry!.host}/resume`, ...args.slice(4)])
    t.equal(rerun.exit, 0, rerun.stderr)
    t.same(await spoolOf(child.pid), [], 'which the rerun removed')
    t.equal(rerun.summary?.pushed, 1, `${names.multi} landed`)
    t.ok((rerun.summary?.blobsSkipped as number) >= 1, 'the blob uploaded before the kill was found in the staging repository')
    t.ok((rerun.summary?.bytesPushed as number) < total, `the rerun sent ${rerun.summary?.bytesPushed} of ${total} bytes`)
    const response = await fetch(`${ferry!.url}/v2/resume/x/multi/manifests/2.0`, {
      method: 'HEAD',
      headers: {
        authorization: `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}`,
        accept: 'application/vnd.oci.image.index.v1+json',
      },
    })
    t.equal(response.headers.get('docker-content-digest'), bundles.index.digest, 'the index is tagged byte-exact')
  })
}
