// A monolithic push on S3 through Ferry as `ferry serve` composes it (the lifecycle's recording
// decorators included): written straight to its content address, with no upload session object
// created, read back and deleted on the way (4 S3 requests more, past the 12 a 100 MiB push may cost).
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { htpasswdLine } from '../helpers/htpasswd.js'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { makeBlob } from '../helpers/oci.js'

const s3Requests = async (url: string, operation: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  const match = new RegExp(`^ferry_storage_s3_requests_total\\{operation="${operation}"\\} (\\d+)$`, 'm').exec(text)
  return Number(match?.[1] ?? 0)
}

t.test('a monolithic push through the composed server goes to its content address without a session', async (t) => {
  const seeder = { username: 'seeder', password: 'seeder-pw' }
  const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
  const authorization = `Basic ${Buffer.from(`${seeder.username}:${seeder.password}`).toString('base64')}`
  process.env.FERRY_TEST_STORAGE = 's3'
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', 'http://127.0.0.1:9')], defaultUpstream: 'gcr.io' },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
      },
    },
  ).finally(() => delete process.env.FERRY_TEST_STORAGE)
  t.teardown(() => ferry.close())
  const push = async (bytes: Buffer): Promise<string> => {
    const blob = makeBlob(bytes)
    const res = await fetch(`${ferry.url}/v2/team/app/blobs/uploads/?digest=${blob.digest}`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/octet-stream' },
      body: blob.bytes,
    })
    t.equal(res.status, 201)
    await res.arrayBuffer()
    return blob.digest
  }
  await push(randomBytes(1000)) // the repository exists from here on
  const before = { puts: await s3Requests(ferry.url, 'PutObject'), deletes: await s3Requests(ferry.url, 'DeleteObject') }
  const content = randomBytes(20 * 1024 * 1024)
  const digest = await push(content)
  t.equal(await s3Requests(ferry.url, 'PutObject'), before.puts + 1, 'one PutObject: the repository link, no session object')
  t.equal(await s3Requests(ferry.url, 'DeleteObject'), before.deletes, 'no session to delete')
  const back = await fetch(`${ferry.url}/v2/team/app/blobs/${digest}`, { headers: { authorization } })
  t.ok(Buffer.from(await back.arrayBuffer()).equals(content), 'byte-exact')
})
