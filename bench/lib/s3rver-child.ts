// The S3 scenario's store in a process of its own: the tests' s3rver (test/helpers/s3-server.ts,
// its two fixes included) on a free loopback port. A store is remote in production: in the
// harness's or Ferry's process it would take its CPU from them, and hide what Ferry's own path
// costs. Talks to the harness over IPC: `{ endpoint, bucket }` once listening, and the S3
// operations received since a given index when asked. Exits when the harness goes away.
import { startS3Server } from '../../test/helpers/s3-server.js'

interface RequestsQuery {
  type: 'requests'
  from: number
}

const server = await startS3Server()
process.on('message', (message: RequestsQuery) => {
  if (message.type === 'requests') process.send?.({ type: 'requests', operations: server.requests.slice(message.from) })
})
process.on('disconnect', () => {
  void server.close().finally(() => process.exit(0))
})
process.send?.({ type: 'ready', endpoint: server.endpoint, bucket: server.bucket })
