// The clients of the benchmark: blob downloads (one curl process each), blob uploads (monolithic
// and chunked, undici) and manifest pushes. Pushes and reads start anonymous and each switch to
// the bench user's Basic credentials on their own first 401, so seeding a registry does not make
// its reads authenticated (containerd's pulls are anonymous where the registry allows it).
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { createHash } from 'node:crypto'
import { Transform, type Readable, type Writable } from 'node:stream'
import { request, type Dispatcher } from 'undici'
import { basicAuthorization, type Server } from './processes.js'

interface Download {
  bytes: number
  /** From `startedAt` to the first body byte. */
  firstByteMs: number
  /** From this client's own start (curl spawned) to its first body byte. */
  ownFirstByteMs: number
  /** The HTTP version curl spoke (`1.1`, `2`). */
  httpVersion: string
}

/**
 * `clients` concurrent downloads of `paths[i % paths.length]`, all started at once, each by its
 * own `curl` process writing to /dev/null. Not undici in this process: one JavaScript client
 * receiving 16 streams saturated a core at ~1.3-2.3 GB/s and capped every server below what it
 * could send, and most for servers that use sendfile (distribution, Ferry), whose bytes reach the
 * client straight from the page cache rather than cache-hot from a server's buffer.
 */
export async function concurrentDownloads(
  server: Server,
  paths: string[],
  clients: number,
  expectedBytes: number,
  options: {
    /**
     * Start every transfer at one instant: the curls are spawned first and each waits for its URL
     * on stdin (`-K -`), given to all at once. Otherwise the spread of first bytes and the wall
     * time include spawning the processes one after another (0.5-1 s for 32 on a loaded machine).
     */
    together?: boolean
  } = {},
): Promise<{
  seconds: number
  bytes: number
  lastFirstByteMs: number
  firstFirstByteMs: number
  slowestOwnFirstByteMs: number
  httpVersions: string
}> {
  let startedAt = performance.now()
  let results: Download[]
  if (options.together) {
    const gated = Array.from({ length: clients }, (_, i) => gatedCurl(server, paths[i % paths.length]!, expectedBytes))
    await Promise.all(gated.map((curl) => curl.spawned))
    startedAt = performance.now()
    results = await Promise.all(gated.map((curl) => curl.release(startedAt)))
  } else {
    results = await Promise.all(
      Array.from({ length: clients }, (_, i) => curlDownload(server, paths[i % paths.length]!, startedAt, expectedBytes)),
    )
  }
  return {
    seconds: (performance.now() - startedAt) / 1000,
    bytes: results.reduce((sum, r) => sum + r.bytes, 0),
    lastFirstByteMs: Math.max(...results.map((r) => r.firstByteMs)),
    firstFirstByteMs: Math.min(...results.map((r) => r.firstByteMs)),
    // Without curl's spawn offsets: how long the slowest client waited for its first byte.
    slowestOwnFirstByteMs: Math.max(...results.map((r) => r.ownFirstByteMs)),
    httpVersions: [...new Set(results.map((r) => r.httpVersion))].join(', '),
  }
}

/**
 * One download by a curl that is spawned now and waits for its URL on stdin until release(); on a
 * 401 it goes again ungated (curlDownload).
 */
function gatedCurl(
  server: Server,
  path: string,
  expectedBytes: number,
): { spawned: Promise<void>; release(startedAt: number): Promise<Download> } {
  const child = spawn('curl', [...curlOptions(server), '-K', '-'], { stdio: ['pipe', 'pipe', 'pipe'] })
  const output = collect(child, 'curl')
  output.catch(() => {})
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  return {
    spawned,
    async release(startedAt) {
      const releasedAt = performance.now()
      child.stdin.end(`url = "${server.url}${path}"\n`)
      const [status, size, firstByte, httpVersion = '?'] = (await output).trim().split(' ')
      if (status === '401' && server.headers.authorization === undefined) return curlDownload(server, path, startedAt, expectedBytes)
      if (status !== '200') throw new Error(`${server.name} GET ${path}: ${status}`)
      const bytes = Number(size)
      if (bytes !== expectedBytes) throw new Error(`${server.name} GET ${path}: ${bytes} bytes, expected ${expectedBytes}`)
      const ownFirstByteMs = Number(firstByte) * 1000
      return { bytes, firstByteMs: releasedAt - startedAt + ownFirstByteMs, ownFirstByteMs, httpVersion }
    },
  }
}

/** curl's options for a download from `server` that prints status, size, first byte and protocol. */
function curlOptions(server: Server): string[] {
  const headers = Object.entries(server.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`])
  const format = '%{http_code} %{size_download} %{time_starttransfer} %{http_version}'
  return ['-sS', '-o', '/dev/null', '-w', format, ...server.curlArgs, ...headers]
}

/** One download by curl; on a 401 without credentials, again with the bench user. */
async function curlDownload(server: Server, path: string, startedAt: number, expectedBytes: number): Promise<Download> {
  for (;;) {
    const spawnedAt = performance.now()
    const output = await run('curl', [...curlOptions(server), `${server.url}${path}`])
    const [status, size, firstByte, httpVersion = '?'] = output.trim().split(' ')
    if (status === '401' && server.headers.authorization === undefined) {
      server.headers.authorization = basicAuthorization()
      continue
    }
    if (status !== '200') throw new Error(`${server.name} GET ${path}: ${status}`)
    const bytes = Number(size)
    if (bytes !== expectedBytes) throw new Error(`${server.name} GET ${path}: ${bytes} bytes, expected ${expectedBytes}`)
    return { bytes, firstByteMs: spawnedAt - startedAt + Number(firstByte) * 1000, ownFirstByteMs: Number(firstByte) * 1000, httpVersion }
  }
}

function run(command: string, args: string[]): Promise<string> {
  return collect(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }), command)
}

/** The child's stdout once it exited 0. */
function collect(child: ChildProcessByStdio<Writable | null, Readable, Readable>, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${command} exited ${code}: ${stderr.trim()}`))))
  })
}

async function drain(body: Dispatcher.ResponseData['body']): Promise<string> {
  return (await body.text()).slice(0, 300)
}

/** POST an upload session; on a 401 without credentials, retry once with the bench user. */
export async function startUpload(server: Server, repo: string): Promise<URL> {
  for (let attempt = 0; ; attempt++) {
    const { statusCode, headers, body } = await request(`${server.url}/v2/${repo}/blobs/uploads/`, {
      method: 'POST',
      headers: server.pushHeaders,
    })
    const text = await drain(body)
    if (statusCode === 401 && attempt === 0 && server.pushHeaders.authorization === undefined) {
      server.pushHeaders.authorization = basicAuthorization()
      continue
    }
    if (statusCode !== 202) throw new Error(`${server.name} POST ${repo} upload: ${statusCode} ${text}`)
    return new URL(String(headers.location), server.url)
  }
}

function withDigest(location: URL, digest: string): URL {
  const url = new URL(location)
  url.searchParams.set('digest', digest)
  return url
}

/** POST, then one PUT `?digest=` carrying the whole body. */
export async function pushMonolithic(server: Server, repo: string, digest: string, size: number, body: () => Readable): Promise<void> {
  const location = await startUpload(server, repo)
  const put = await request(withDigest(location, digest), {
    method: 'PUT',
    headers: { ...server.pushHeaders, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: body(),
  })
  const text = await drain(put.body)
  if (put.statusCode !== 201) throw new Error(`${server.name} PUT ${repo} blob ${digest}: ${put.statusCode} ${text}`)
}

/** POST, PATCHes of `chunkBytes` with Content-Range, then an empty PUT `?digest=`. */
export async function pushChunked(
  server: Server,
  repo: string,
  digest: string,
  size: number,
  chunkBytes: number,
  chunk: (length: number) => Readable,
): Promise<void> {
  let location = await startUpload(server, repo)
  for (let start = 0; start < size; start += chunkBytes) {
    const length = Math.min(chunkBytes, size - start)
    const patch = await request(location, {
      method: 'PATCH',
      headers: {
        ...server.pushHeaders,
        'content-type': 'application/octet-stream',
        'content-length': String(length),
        'content-range': `${start}-${start + length - 1}`,
      },
      body: chunk(length),
    })
    const text = await drain(patch.body)
    if (patch.statusCode !== 202) throw new Error(`${server.name} PATCH ${repo} at ${start}: ${patch.statusCode} ${text}`)
    location = new URL(String(patch.headers.location), server.url)
  }
  const put = await request(withDigest(location, digest), { method: 'PUT', headers: { ...server.pushHeaders, 'content-length': '0' } })
  const text = await drain(put.body)
  if (put.statusCode !== 201) throw new Error(`${server.name} PUT ${repo} blob ${digest}: ${put.statusCode} ${text}`)
}

/** Pushes a stream of unknown digest: one streamed PATCH (hashed on the way), then PUT `?digest=`. */
export async function pushStreaming(server: Server, repo: string, body: Readable): Promise<string> {
  const location = await startUpload(server, repo)
  const hash = createHash('sha256')
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk)
      callback(null, chunk)
    },
  })
  body.on('error', (err) => hashing.destroy(err))
  const patch = await request(location, {
    method: 'PATCH',
    headers: { ...server.pushHeaders, 'content-type': 'application/octet-stream' },
    body: body.pipe(hashing),
  })
  const text = await drain(patch.body)
  if (patch.statusCode !== 202) throw new Error(`${server.name} PATCH ${repo}: ${patch.statusCode} ${text}`)
  const digest = `sha256:${hash.digest('hex')}`
  const put = await request(withDigest(new URL(String(patch.headers.location), server.url), digest), {
    method: 'PUT',
    headers: { ...server.pushHeaders, 'content-length': '0' },
  })
  const putText = await drain(put.body)
  if (put.statusCode !== 201) throw new Error(`${server.name} PUT ${repo} blob ${digest}: ${put.statusCode} ${putText}`)
  return digest
}

export async function pushManifest(server: Server, repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<void> {
  const put = await request(`${server.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { ...server.pushHeaders, 'content-type': mediaType },
    body: bytes,
  })
  const text = await drain(put.body)
  if (put.statusCode !== 201) throw new Error(`${server.name} PUT ${repo} manifest ${reference}: ${put.statusCode} ${text}`)
}
