// A blob body that fails midway must reach the client as a failure over HTTP/2 too: a reset with
// INTERNAL_ERROR, not NO_ERROR (which a client may take for a complete, short body). One that
// fails before its first byte (a stored file that cannot be read) is answered with the OCI error,
// status and body, over both protocols: nothing was sent yet, so the client can be told why.
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import pino from 'pino'
import t, { type Test } from 'tap'
import type { Registry } from '../../src/core/registry.js'
import type { PositionalSource } from '../../src/transfer/body-sources.js'
import { composeTransfer } from '../../src/app/compose-transfer.js'
import { buildApp } from '../../src/http/app.js'
import { Metrics } from '../../src/observability/metrics.js'
import { FilesystemDriver } from '../../src/storage/driver/filesystem.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'
import { h2Headers, h2Request, h2Session, h2Stream } from '../helpers/h2.js'
import { httpsRequest } from '../helpers/https.js'
import { openAuthenticator, openAuthorizer } from '../helpers/open-access.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'

const MiB = 1024 * 1024
const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `HTTP/2 stream tests skipped: ${why}`)
} else {
  t.test('a blob stream failing midway', main)
}

/** A stored blob's file that cannot be read: the sender's first read fails, before any byte went out. */
class UnreadableFile extends Readable implements PositionalSource {
  override _read(): void {}
  readAt(): Promise<number> {
    return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }))
  }
}

/** A registry whose every blob claims 4 MiB and breaks after 1 MiB. */
function breakingRegistry(local: LocalRegistry): Registry {
  return {
    catalog: (page, op) => local.catalog(page, op),
    repository(name) {
      const repo = local.repository(name)
      const { blobs } = repo
      return {
        name: repo.name,
        manifests: repo.manifests,
        tags: repo.tags,
        blobs: {
          uploads: blobs.uploads,
          stat: (digest, o) => blobs.stat(digest, o),
          mount: (from, digest, o) => blobs.mount(from, digest, o),
          delete: (digest, o) => blobs.delete(digest, o),
          open: async (digest) => {
            if (name === 'unreadable/blob') return { kind: 'body', digest, size: 4 * MiB, stream: new UnreadableFile() }
            let sent = 0
            const stream = new Readable({
              read() {
                if (sent >= MiB) {
                  setTimeout(() => this.destroy(new Error('storage failed mid-read')), 10)
                  return
                }
                sent += 64 * 1024
                this.push(Buffer.alloc(64 * 1024, 1))
              },
            })
            return { kind: 'body', digest, size: 4 * MiB, stream }
          },
        },
      }
    },
  }
}

async function main(t: Test): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-h2-streams-'))
  const ca = await makeCa(join(dir, 'ca'))
  const cert = await issueServerCert(ca, { cn: 'ferry.test', name: 'server' })
  const metrics = new Metrics({ processMetrics: false })
  const app = await buildApp({
    registry: breakingRegistry(new LocalRegistry(new FilesystemDriver(join(dir, 'data')))),
    logger: pino({ level: 'silent' }),
    metrics,
    authenticator: openAuthenticator,
    authorizer: openAuthorizer,
    blobSender: composeTransfer({ sendfile: true, metrics }).sender,
    serverOptions: { http2: true, https: { cert: cert.certPem, key: cert.keyPem, allowHTTP1: true } },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await app.close()
    await rm(dir, { recursive: true, force: true })
  })
  const origin = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const path = `/v2/broken/blob/blobs/sha256:${'a'.repeat(64)}`

  t.test('HTTP/2: the stream is reset with INTERNAL_ERROR after the bytes that were read', async (t) => {
    const session = await h2Session(origin, { ca: ca.certPem })
    t.teardown(() => session.close())
    const stream = h2Stream(session, path)
    let received = 0
    stream.on('data', (chunk: Buffer) => void (received += chunk.length))
    const headers = await h2Headers(stream)
    t.equal(headers[':status'], 200)
    t.equal(headers['content-length'], String(4 * MiB))
    const ending = await new Promise<string>((resolve) => {
      stream.once('end', () => resolve('end'))
      stream.once('error', (err: Error & { code?: string }) => resolve(`${err.code}: ${err.message}`))
    })
    t.match(ending, /ERR_HTTP2_STREAM_ERROR: .*NGHTTP2_INTERNAL_ERROR/, 'the client sees an error, not a clean end')
    t.ok(received < 4 * MiB, `only part of the body arrived (${received} bytes)`)
    t.equal(stream.rstCode, 2, 'RST_STREAM INTERNAL_ERROR')
  })

  t.test('HTTP/1.1: the connection is cut', async (t) => {
    await t.rejects(httpsRequest(`${origin}${path}`, { ca: ca.certPem }), /aborted|socket hang up|ECONNRESET/)
  })

  const unreadable = `/v2/unreadable/blob/blobs/sha256:${'b'.repeat(64)}`
  const answeredWithError = (t: Test, status: number, headers: Record<string, unknown>, body: Buffer): void => {
    t.equal(status, 500, 'an error status, not a 200 cut short')
    t.match(headers['content-type'], /^application\/json/)
    t.match(JSON.parse(body.toString()), { errors: [{ code: 'UNKNOWN' }] }, 'the OCI error body')
    t.notOk(headers['docker-content-digest'], "without the blob's headers")
    t.notOk(headers.etag)
  }

  t.test('HTTP/2: a body failing before its first byte is answered with the OCI error', async (t) => {
    const response = await h2Request(origin, unreadable, { session: { ca: ca.certPem } })
    answeredWithError(t, response.status, response.headers, response.body)
  })

  t.test('HTTP/1.1: a body failing before its first byte is answered with the OCI error', async (t) => {
    const response = await httpsRequest(`${origin}${unreadable}`, { ca: ca.certPem })
    answeredWithError(t, response.status, response.headers, response.body)
  })
}
