// The least a process between the client and the store can do, as a reference for Ferry's cached
// pull on S3: a bare node:http server whose every GET /<key> is one GetObject through the S3
// client Ferry builds (src/storage/driver/s3-client.ts), its body piped into the response. No
// routing, auth, lookups or logging: what it costs is the hop itself (a socket read and a socket
// write per chunk in JavaScript), which the bare SDK download, in the harness, does not pay.
// Talks to the harness over IPC: `{ url }` once listening; exits when the harness goes away.
import { createServer } from 'node:http'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { createS3Client, type S3DriverOptions } from '../../src/storage/driver/s3-client.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
const options = JSON.parse(process.argv[2] ?? '{}') as S3DriverOptions
const client = await createS3Client(options)
const server = createServer((req, res) => {
  const key = decodeURIComponent((req.url ?? '/').slice(1))
  client.send(new GetObjectCommand({ Bucket: options.bucket, Key: key })).then(
    (answer) => {
      res.writeHead(200, { 'content-length': String(answer.ContentLength ?? 0) })
      pipeline(answer.Body as Readable, res).catch(() => res.destroy())
    },
    () => res.writeHead(404).end(),
  )
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  if (address !== null && typeof address === 'object') process.send?.({ type: 'ready', url: `http://127.0.0.1:${address.port}` })
})
process.on('disconnect', () => process.exit(0))
