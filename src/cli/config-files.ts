// The files a config names (serving certificate, htpasswd, token key, upstream CA bundles, client
// certificates and credential files), opened by the very code that opens them when `ferry serve`
// starts and closed again at once. `ferry config check` so finds what start-up would refuse, and a
// rotation can be tried before SIGHUP. Nothing here parses a file itself.
import { pino } from 'pino'
import { KeyRing } from '../auth/key-ring.js'
import { UserStore } from '../auth/users.js'
import type { Config, UpstreamConfig } from '../config/schema.js'
import { openMirrorCredentials } from '../app/upstream-credential-files.js'
import { Metrics } from '../observability/metrics.js'
import { TlsFileError, loadCertificateSet } from '../tls/certificate-set.js'
import { TransportFileError } from '../upstream/transport-files.js'
import { UpstreamTransport } from '../upstream/upstream-transport.js'

export interface FileCheck {
  /** One line per unusable file, naming its config key and the file; never file content. */
  problems: string[]
  /** Usable but worth a look (a certificate close to expiry, ...). */
  warnings: string[]
}

export async function checkConfigFiles(config: Config): Promise<FileCheck> {
  const problems: string[] = []
  const warnings: string[] = []
  // Opening is all we do: their log lines and metrics have nowhere to go.
  const logger = pino({ level: 'silent' })
  const metrics = new Metrics({ processMetrics: false })
  const attempt = async (key: string, file: string, open: () => Promise<void>, upstream?: string): Promise<void> => {
    try {
      await open()
    } catch (err) {
      // These already name the key and the file.
      if (err instanceof TlsFileError || err instanceof TransportFileError) problems.push(err.message)
      else problems.push(`${key} (${file})${upstream === undefined ? '' : ` of upstream ${upstream}`}: ${reason(err, file)}`)
    }
  }

  const serving = config.tls.serving
  if (serving !== undefined) {
    await attempt('tls.cert', serving.cert, async () => {
      const set = await loadCertificateSet({ ...serving, clientCa: config.tls.clientCa })
      warnings.push(...set.warnings)
    })
  }
  const { htpasswd, token } = config.auth
  if (htpasswd !== undefined) {
    await attempt('auth.htpasswd', htpasswd, async () => {
      const store = await UserStore.open({ htpasswd, inline: config.auth.users, logger, watch: false })
      store.close()
    })
  }
  if (token.key !== undefined) {
    const file = token.key
    await attempt('auth.token.key', file, async () => {
      const ring = await KeyRing.open({ file, overlapMs: 0, logger })
      ring.close()
    })
  }
  for (const [index, upstream] of config.mirror.upstreams.entries()) {
    const credentials = credentialKey(config, upstream, index)
    if (credentials !== undefined) {
      await attempt(
        credentials.key,
        credentials.file,
        async () => {
          const opened = await openMirrorCredentials({ ...config.mirror, upstreams: [upstream] }, metrics, logger)
          await opened.close()
        },
        credentials.key.startsWith('mirror.upstreams.') ? upstream.name : undefined,
      )
    }
    const keyPrefix = `mirror.upstreams.${index}.tls`
    await attempt(keyPrefix, '', async () => {
      await new UpstreamTransport({ upstream, index, proxyDefaults: config.mirror.proxy, logger, metrics }).close()
    })
  }
  // A mirror-wide credentials file used by several upstreams is reported once.
  return { problems: [...new Set(problems)], warnings }
}

// The key whose file the upstream's credentials come from, as app/upstream-credential-files.ts chooses it.
function credentialKey(config: Config, upstream: UpstreamConfig, index: number): { key: string; file: string } | undefined {
  if (upstream.gcrKeyPath !== undefined) return { key: `mirror.upstreams.${index}.gcrKeyPath`, file: upstream.gcrKeyPath }
  if (upstream.pullCredentialConfigPath !== undefined) {
    return { key: `mirror.upstreams.${index}.pullCredentialConfigPath`, file: upstream.pullCredentialConfigPath }
  }
  const shared = config.mirror.pullCredentialConfigPath
  return shared === undefined ? undefined : { key: 'mirror.pullCredentialConfigPath', file: shared }
}

// File-system errors by their code (their messages repeat the path); others without the
// "<upstream>: <kind> file <path>: " their message may start with.
function reason(err: unknown, file: string): string {
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return `cannot be read (${code})`
  const message = err instanceof Error ? err.message : String(err)
  const at = message.lastIndexOf(`${file}: `)
  return at < 0 ? message : message.slice(at + file.length + 2)
}
