// Every byte a pushed blob brings in is told to ComposeOptions.onBytesIn as it arrives (serve
// widens V8's old generation while they come, cli/old-generation.ts): a monolithic upload, a
// chunked one, and nothing for a pull.
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { startAuthServer } from '../helpers/auth-server.js'

const MiB = 1024 * 1024
const authorization = `Basic ${Buffer.from('pusher:pusher-pw').toString('base64')}`

t.test('uploads tell onBytesIn of every byte; downloads do not', async (t) => {
  let counted = 0
  const server = await startAuthServer(t, { users: { pusher: 'pusher-pw' }, onBytesIn: (bytes) => (counted += bytes) })
  const start = async (): Promise<string> => {
    const response = await fetch(`${server.url}/v2/bytes/in/blobs/uploads/`, { method: 'POST', headers: { authorization } })
    t.equal(response.status, 202)
    return new URL(response.headers.get('location')!, server.url).href
  }
  const withDigest = (location: string, bytes: Buffer): string => {
    const url = new URL(location)
    url.searchParams.set('digest', `sha256:${createHash('sha256').update(bytes).digest('hex')}`)
    return url.href
  }

  const whole = randomBytes(3 * MiB)
  const put = await fetch(withDigest(await start(), whole), { method: 'PUT', headers: { authorization }, body: whole })
  t.equal(put.status, 201)
  t.equal(counted, whole.length, 'a monolithic upload: every byte')

  const chunked = randomBytes(2 * MiB + 17)
  let location = await start()
  for (const [from, to] of [
    [0, MiB],
    [MiB, chunked.length],
  ] as const) {
    const patch = await fetch(location, {
      method: 'PATCH',
      headers: { authorization, 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` },
      body: chunked.subarray(from, to),
    })
    t.equal(patch.status, 202)
    location = new URL(patch.headers.get('location')!, server.url).href
  }
  const done = await fetch(withDigest(location, chunked), { method: 'PUT', headers: { authorization } })
  t.equal(done.status, 201)
  t.equal(counted, whole.length + chunked.length, 'a chunked upload: every byte too')

  const digest = `sha256:${createHash('sha256').update(whole).digest('hex')}`
  const pulled = await fetch(`${server.url}/v2/bytes/in/blobs/${digest}`, { headers: { authorization } })
  t.equal(Buffer.from(await pulled.arrayBuffer()).length, whole.length)
  t.equal(counted, whole.length + chunked.length, 'a download: none')
})
