// Hauler hauls end to end through the real composed server (htpasswd account):
// Hauler hauls (built as Hauler's store lays them out, test/helpers/haul.ts) pushed by
// `ferry push images` and by the server import, then read back with skopeo digest for digest,
// cosign signatures landing under their cosign tags; older, newer and --containerd hauls planned.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BundlePush } from '../../src/bundle/importer.js'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { startAuthServer } from '../helpers/auth-server.js'
import { eventually } from '../helpers/eventually.js'
import { buildHaul, haulNames, type Haul } from '../helpers/haul.js'
import { tagDescriptor } from '../helpers/oci-layout.js'
import { missingTools, run } from '../helpers/tools.js'

const skopeo = (...args: string[]) => run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })
const basic = `Basic ${Buffer.from('admin:admin-pw').toString('base64')}`

const missing = missingTools('skopeo', 'umoci', 'zstd', 'htpasswd')
if (missing.length > 0) {
  t.plan(0, `bundle formats e2e skipped: ${missing.join(', ')} not on PATH`)
} else {
  await main()
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'ferry-e2e-formats-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const server = await startAuthServer(t, {
    users: { admin: 'admin-pw' },
    auth: { roles: [{ subjects: ['admin'], namespaces: ['**'], role: 'admin' }] },
  })
  const { url, host } = server
  const haul = await buildHaul(join(work, 'haul'))

  const push = async (args: string[]): Promise<{ exit: number; stdout: string; stderr: string }> => {
    const fake = fakeIo()
    await runCli(['node', 'ferry', 'push', 'images', ...args, '--username', 'admin', '--password', 'admin-pw'], fake.io)
    return { exit: fake.exits[0] ?? -1, stdout: fake.stdout(), stderr: fake.stderr() }
  }
  const inspectRaw = async (ref: string): Promise<Buffer> =>
    Buffer.from((await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', 'admin:admin-pw', `docker://${ref}`)).stdout, 'utf8')

  /** Everything of the haul is in `namespace` under Hauler's names, with its digests; skopeo reads it back. */
  const landed = async (t: Test, namespace: string, haul: Haul): Promise<void> => {
    const at = `${host}/${namespace}`
    t.ok((await inspectRaw(`${at}/x/multi:2.0`)).equals(haul.index.bytes), 'the index, byte-exact under its name')
    t.ok((await inspectRaw(`${at}/acme/tool:1.0`)).equals(haul.tool.bytes), 'the single image')
    const sigTag = `sha256-${haul.index.digest.slice(7)}.sig`
    t.ok((await inspectRaw(`${at}/x/multi:${sigTag}`)).equals(haul.signature.bytes), "the signature under cosign's tag for the index")
    const attTag = `sha256-${haul.amd64.digest.slice(7)}.att`
    t.ok((await inspectRaw(`${at}/x/multi:${attTag}`)).equals(haul.attestation.bytes), 'the attestation under the tag of its platform')
    t.ok((await inspectRaw(`${at}/hauler/notes.txt:latest`)).equals(haul.notes.bytes), 'the file artifact, named as Hauler names it')
    const notes = JSON.parse(haul.notes.bytes.toString('utf8')) as { layers: Array<{ digest: string }> }
    const blob = await fetch(`${url}/v2/${namespace}/hauler/notes.txt/blobs/${notes.layers[0]!.digest}`, {
      headers: { authorization: basic },
    })
    t.ok(Buffer.from(await blob.arrayBuffer()).equals(haul.notes.content), "and the file's bytes")
    const pulled = join(work, `pulled-${namespace}`)
    await skopeo(
      'copy',
      '--all',
      '--preserve-digests',
      '--src-tls-verify=false',
      '--src-creds',
      'admin:admin-pw',
      `docker://${at}/x/multi:2.0`,
      `oci:${pulled}:back`,
    )
    t.equal((await tagDescriptor(pulled, 'back')).digest, haul.index.digest, 'skopeo copy --all: the same index digest')
  }

  await t.test('a Hauler haul (.tar.zst) through push images: images, signatures and files with their names and digests', async (t) => {
    const pushed = await push(['--source', haul.file, '--private-registry', `http://${host}/haul`, '--digest-map', join(work, 'map.json')])
    t.equal(pushed.exit, 0, pushed.stderr)
    await landed(t, 'haul', haul)
    const map = JSON.parse(await readFile(join(work, 'map.json'), 'utf8')) as Record<string, { digest: string }>
    t.equal(map[haulNames.multi]?.digest, haul.index.digest, 'the digest map names the image by its source reference')
  })

  await t.test('the same haul through the server import', async (t) => {
    const response = await fetch(`${url}/ferry/v1/imports?namespace=haul-import`, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/octet-stream' },
      body: await readFile(haul.file),
    })
    t.equal(response.status, 202)
    const location = new URL(response.headers.get('location') ?? '', url)
    const status = await eventually(
      async () => {
        const s = (await (await fetch(location, { headers: { authorization: basic } })).json()) as { state: string; error?: string }
        return ['done', 'partial', 'failed', 'cancelled'].includes(s.state) ? s : undefined
      },
      { timeoutMs: 60_000, message: 'the import finished' },
    )
    t.equal(status.state, 'done', JSON.stringify(status))
    await landed(t, 'haul-import', haul)
  })

  await t.test('older (dev.cosignproject.cosign), newer (no kind) and --containerd hauls are placed alike (dry run)', async (t) => {
    for (const variant of [{ legacyKinds: true }, { noKinds: true }, { containerd: true }]) {
      const other = await buildHaul(join(work, Object.keys(variant)[0]!), variant)
      const report = await new BundlePush({ source: other.file, namespace: 'ns', concurrency: 4, keepGoing: true }).run()
      t.same(
        report.images.map((i) => [i.destination, i.digest, i.error]).sort(),
        [
          ['ns/acme/tool:1.0', other.tool.digest, undefined],
          ['ns/hauler/notes.txt:latest', other.notes.digest, undefined],
          ['ns/x/multi:2.0', other.index.digest, undefined],
          [`ns/x/multi:sha256-${other.amd64.digest.slice(7)}.att`, other.attestation.digest, undefined],
          [`ns/x/multi:sha256-${other.index.digest.slice(7)}.sig`, other.signature.digest, undefined],
        ].sort(),
        JSON.stringify(variant),
      )
    }
  })
}
