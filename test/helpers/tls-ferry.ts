// Config for TLS tests of a whole Ferry (in process or as a process): a YAML file with the given
// tls section, no upstreams, and, when this build has authentication, an account that may push
// (anonymous push is never allowed there) while anonymous pulls stay open.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { defaultRawConfig } from '../../src/config/schema.js'
import { writeHtpasswd } from './htpasswd.js'

export interface Credentials {
  username: string
  password: string
}

export interface TlsFerryConfig {
  /** The YAML file written. */
  file: string
  /** Send these with pushes; undefined when this build has no authentication. */
  credentials: Credentials | undefined
}

export function basicAuthorization(credentials: Credentials | undefined): Record<string, string> {
  if (credentials === undefined) return {}
  return { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
}

/** Writes `<dir>/ferry.yaml` serving from `<dir>/data` on 127.0.0.1:0 with `tls`. */
export async function writeTlsFerryConfig(
  dir: string,
  tls: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<TlsFerryConfig> {
  const access = await accessSection(dir)
  const file = join(dir, 'ferry.yaml')
  const config = {
    listen: '127.0.0.1:0',
    storage: { filesystem: { path: join(dir, 'data') } },
    mirror: { upstreams: [], defaultUpstream: '' },
    tls,
    ...(access.section ? { auth: access.section } : {}),
    ...extra,
  }
  await writeFile(file, stringify(config))
  return { file, credentials: access.credentials }
}

async function accessSection(dir: string): Promise<{ section?: Record<string, unknown>; credentials: Credentials | undefined }> {
  if (!('auth' in (defaultRawConfig() as object))) return { credentials: undefined }
  const credentials = { username: 'pusher', password: 'tls-test-secret-0123456789' }
  const htpasswd = join(dir, 'users.htpasswd')
  await writeHtpasswd(htpasswd, { [credentials.username]: credentials.password })
  return {
    section: {
      htpasswd,
      roles: [{ subjects: [credentials.username], namespaces: ['**'], role: 'admin' }],
      anonymousPull: ['**'],
    },
    credentials,
  }
}
