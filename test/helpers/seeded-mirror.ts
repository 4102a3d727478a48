// The set-up the storage-lifecycle e2e tests share: CNCF distribution as gcr.io's upstream and a
// mirror in front of it where anyone may pull and one admin ("seeder") may push anywhere. Both are
// stopped when the test ends; a failing test gets the mirror's last log lines as a comment.
import type { Test } from 'tap'
import type { Config } from '../../src/config/schema.js'
import { startDistribution, type Distribution } from './distribution.js'
import { htpasswdLine } from './htpasswd.js'
import { startMirrorServer, upstreamConfig, type MirrorServer } from './mirror-server.js'

export interface SeededMirror {
  upstream: Distribution
  ferry: MirrorServer
  seeder: { username: string; password: string }
}

export async function startSeededMirror(t: Test, configure?: (config: Config) => void): Promise<SeededMirror> {
  const seeder = { username: 'seeder', password: 'seeder-pw' }
  const seederHash = (await htpasswdLine(seeder.username, seeder.password)).split(':')[1]!
  const upstream = await startDistribution()
  t.teardown(() => upstream.stop())
  const ferry = await startMirrorServer(
    { upstreams: [upstreamConfig('gcr.io', upstream.url)], defaultUpstream: 'gcr.io' },
    {
      auth: {
        users: [{ name: seeder.username, password: seederHash, groups: [] }],
        roles: [{ subjects: [seeder.username], namespaces: ['**'], role: 'admin' }],
        anonymousPull: ['**'],
      },
      ...(configure ? { configure } : {}),
    },
  )
  t.teardown(async () => {
    if (!t.passing()) t.comment(ferry.logs.slice(-15).join(''))
    await ferry.close()
  })
  return { upstream, ferry, seeder }
}
