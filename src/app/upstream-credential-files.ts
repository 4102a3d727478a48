// Opens the credential files the mirror config names (one CredentialFile per path, shared by
// the upstreams using it), watches them, and reports every re-read as one log line and a
// ferry_upstream_credentials_reload_total count per upstream using the file.
import type { Logger } from 'pino'
import type { CredentialProvider, FormPost } from '../client/credentials.js'
import { createFormPoster, type FormPoster } from '../client/form-post.js'
import type { DispatcherSource } from '../client/transport.js'
import type { MirrorConfig } from '../config/schema.js'
import { UpstreamCredentials } from '../credentials/upstream-credentials.js'
import type { Metrics } from '../observability/metrics.js'

export interface MirrorCredentials {
  /** The provider of each upstream that has credentials configured. */
  providers: ReadonlyMap<string, CredentialProvider>
  /** Re-reads every file now (SIGHUP). Never rejects. */
  reload(): Promise<void>
  close(): Promise<void>
}

/** Rejects, naming upstream and file (never content), when a configured file is unusable. */
export async function openMirrorCredentials(
  config: MirrorConfig,
  metrics: Metrics,
  logger: Logger,
  /** An upstream's transport, once built: its token_uri exchanges follow its proxy and CA rules. */
  transportOf: (upstream: string) => DispatcherSource | undefined = () => undefined,
): Promise<MirrorCredentials> {
  // Made on first use, when every upstream's transport exists.
  const posters = new Map<string, FormPoster>()
  const postFor =
    (upstream: string): FormPost =>
    (url, form, signal) => {
      let poster = posters.get(upstream)
      if (poster === undefined) {
        const source = transportOf(upstream)
        poster = createFormPoster(source ? { source } : {})
        posters.set(upstream, poster)
      }
      return poster.post(url, form, signal)
    }
  const closePosters = () => Promise.all([...posters.values()].map((poster) => poster.close()))
  let opened: Awaited<ReturnType<typeof UpstreamCredentials.open>>
  try {
    opened = await UpstreamCredentials.open(
      config.upstreams.map((u) => ({
        name: u.name,
        hosts: u.aliases,
        gcrKeyPath: u.gcrKeyPath,
        gcrKeyFlow: u.gcrKeyFlow,
        // A key file wins over the mirror-wide config.json; an upstream's own config.json too.
        pullCredentialConfigPath: u.gcrKeyPath === undefined ? (u.pullCredentialConfigPath ?? config.pullCredentialConfigPath) : undefined,
      })),
      {
        postFor,
        onReload: ({ path, upstreams, result, error }) => {
          for (const upstream of upstreams) metrics.upstreamCredentialReloads.inc({ upstream, result })
          if (result === 'ok') logger.info({ file: path, upstreams }, 'upstream credentials reloaded')
          else logger.error({ file: path, upstreams, error }, 'upstream credentials file unusable, keeping the previous credentials')
        },
      },
    )
  } catch (err) {
    await closePosters()
    throw err
  }
  const { set, providers } = opened
  set.watch((path, err) =>
    logger.warn(
      { file: path, error: err instanceof Error ? err.message : String(err) },
      'cannot watch upstream credentials file; SIGHUP still re-reads it',
    ),
  )
  for (const { path, upstreams } of set.files()) logger.info({ file: path, upstreams }, 'upstream credentials loaded')
  // Both series exist from the start, so `increase(...{result="error"}[1h]) > 0` can alert.
  for (const { upstreams } of set.files()) {
    for (const upstream of upstreams) for (const result of ['ok', 'error']) metrics.upstreamCredentialReloads.inc({ upstream, result }, 0)
  }
  return {
    providers,
    reload: () => set.reload(),
    async close() {
      set.close()
      await closePosters()
    },
  }
}
