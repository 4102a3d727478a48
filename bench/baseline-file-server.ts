// The ceiling: the least a Node.js HTTP server can do to serve a file on this machine.
// `GET /blobs/<name>` streams <root>/<name> read in 1 MiB chunks (`?chunk=<bytes>` for another
// read size: `?chunk=65536` is the naive `createReadStream().pipe(res)` default);
// `GET /healthz` answers 200; `GET /v2/` answers `{}` as a registry's base endpoint does (the
// bare node:http rate the manifests scenario compares `GET /v2/` with). No logging, no metrics,
// no hashing, no checks beyond the name.
// Run: node --import tsx bench/baseline-file-server.ts <root> [host:port]
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'

const root = process.argv[2]
const [host, port] = (process.argv[3] ?? '127.0.0.1:0').split(':')
if (!root) {
  console.error('usage: baseline-file-server.ts <root> [host:port]')
  process.exit(2)
}

const MiB = 1024 * 1024

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  if (url.pathname === '/healthz') {
    res.writeHead(200, { 'content-length': '2' }).end('ok')
    return
  }
  if (url.pathname === '/v2/') {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' }).end('{}')
    return
  }
  const name = url.pathname.startsWith('/blobs/') ? url.pathname.slice('/blobs/'.length) : ''
  if (!/^[A-Za-z0-9._-]+$/.test(name)) {
    res.writeHead(404, { 'content-length': '0' }).end()
    return
  }
  const chunk = Number(url.searchParams.get('chunk') ?? MiB)
  const path = join(root, name)
  stat(path).then(
    (info) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(info.size) })
      if (req.method === 'HEAD') {
        res.end()
        return
      }
      const file = createReadStream(path, { highWaterMark: chunk })
      file.on('error', () => res.destroy())
      res.on('close', () => file.destroy())
      file.pipe(res)
    },
    () => res.writeHead(404, { 'content-length': '0' }).end(),
  )
})

server.keepAliveTimeout = 75_000
server.listen(Number(port ?? 0), host ?? '127.0.0.1', () => {
  const address = server.address()
  console.log(JSON.stringify({ msg: 'baseline file server started', address }))
})

// Started by the bench harness with our stdin as a pipe it holds: exit when that closes.
if (process.env.BENCH_EXIT_WITH_PARENT === '1') {
  process.stdin.on('end', () => process.exit(0))
  process.stdin.on('error', () => process.exit(0))
  process.stdin.resume()
}
process.once('SIGTERM', () => process.exit(0))
