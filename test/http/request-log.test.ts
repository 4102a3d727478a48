// The per-request log line through the real server and the production logger: one line per
// request with its fields and request id, written without the logger's redaction pass (its
// fields hold no secret) while every other line keeps it; request loggers made only when used.
import t from 'tap'
import type { AddressInfo } from 'node:net'
import { composeTransfer } from '../../src/app/compose-transfer.js'
import { buildApp } from '../../src/http/app.js'
import { createLogger } from '../../src/observability/logger.js'
import { Metrics } from '../../src/observability/metrics.js'
import { MemoryDriver } from '../../src/storage/driver/memory.js'
import { LocalRegistry } from '../../src/storage/local-registry.js'
import { openAuthenticator, openAuthorizer } from '../helpers/open-access.js'

t.test('the access line carries its fields and request id; other lines stay redacted', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger('info', { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  const metrics = new Metrics({ processMetrics: false })
  const app = await buildApp({
    registry: new LocalRegistry(new MemoryDriver()),
    logger,
    metrics,
    authenticator: openAuthenticator,
    authorizer: openAuthorizer,
    blobSender: composeTransfer({ sendfile: true, metrics }).sender,
  })
  // A line through a request's (lazily made) logger keeps the request id and the redaction.
  app.get('/probe', async (request) => {
    request.log.info({ headers: request.headers, config: { password: 'hunter2' } }, 'probe')
    return 'ok'
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const accept = 'application/vnd.oci.image.manifest.v1+json, */*'
  for (let i = 0; i < 2; i++) {
    const res = await fetch(`${url}/v2/log/app/manifests/v1`, { headers: { accept, authorization: 'Bearer secret-token-value' } })
    t.equal(res.status, 404)
    await res.arrayBuffer()
  }
  const access = lines.filter((line) => line.msg === 'request')
  t.equal(access.length, 2, 'one line per request')
  t.match(access[0], { method: 'GET', route: 'manifest', repo: 'log/app', status: 404, remote: '127.0.0.1', name: 'ferry' })
  t.type(access[0]?.reqId, 'string', 'with the request id')
  t.not(access[0]?.reqId, access[1]?.reqId, 'a different one per request')

  t.equal((await fetch(`${url}/probe`, { headers: { authorization: 'Basic c2VjcmV0' } })).status, 200)
  const probe = lines.find((line) => line.msg === 'probe')
  t.type(probe?.reqId, 'string', 'request.log binds the request id')
  t.notMatch(JSON.stringify(lines), /hunter2|c2VjcmV0|secret-token-value/, 'no secret in any line')
})
