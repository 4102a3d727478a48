// Builds each upstream's CredentialProvider from its settings, sharing one CredentialFile per
// path (a global config.json serves many upstreams but is read, watched and reported once).
import type { CredentialProvider, FormPost } from '../client/credentials.js'
import { CredentialFile, type CredentialFileReport, type CredentialParser } from './credential-file.js'
import { DockerConfigCredentials } from './docker-config-credentials.js'
import { parseDockerConfig } from './docker-config.js'
import { GcrKeyCredentials, type GcrKeyFlow } from './gcr-key-credentials.js'
import { parseServiceAccountKey } from './service-account-key.js'

export interface UpstreamCredentialSettings {
  /** The upstream's configured name. */
  name: string
  /** Other names it is known by (aliases), matched against config.json keys after its URL host. */
  hosts: readonly string[]
  gcrKeyPath: string | undefined
  gcrKeyFlow: GcrKeyFlow
  /** The upstream's own config.json, else the global one; undefined for neither. */
  pullCredentialConfigPath: string | undefined
}

/** A file was re-read: `upstreams` are the ones using it. */
export type CredentialReloadListener = (report: CredentialFileReport & { upstreams: string[] }) => void

export interface UpstreamCredentialsOptions {
  /** How an upstream's OAuth2 token exchanges are sent (through that upstream's transport). */
  postFor: (upstream: string) => FormPost
  onReload: CredentialReloadListener
}

interface OpenFile {
  file: CredentialFile<unknown>
  upstreams: string[]
}

export class UpstreamCredentials {
  readonly #options: UpstreamCredentialsOptions
  readonly #files = new Map<string, OpenFile>()

  private constructor(options: UpstreamCredentialsOptions) {
    this.#options = options
  }

  /**
   * Reads every credential file the upstreams name; rejects (naming the file, never its
   * content) when one is unusable. Files are not watched until watch().
   */
  static async open(
    upstreams: readonly UpstreamCredentialSettings[],
    options: UpstreamCredentialsOptions,
  ): Promise<{ set: UpstreamCredentials; providers: Map<string, CredentialProvider> }> {
    const set = new UpstreamCredentials(options)
    const providers = new Map<string, CredentialProvider>()
    try {
      for (const upstream of upstreams) {
        const provider = await set.#providerFor(upstream)
        if (provider !== undefined) providers.set(upstream.name, provider)
      }
    } catch (err) {
      set.close()
      throw err
    }
    return { set, providers }
  }

  /** The files in use, and which upstreams use each. */
  files(): Array<{ path: string; upstreams: string[] }> {
    return [...this.#files.values()].map(({ file, upstreams }) => ({ path: file.path, upstreams: [...upstreams] }))
  }

  watch(onWatchError: (path: string, err: unknown) => void): void {
    for (const { file } of this.#files.values()) file.watch((err) => onWatchError(file.path, err))
  }

  /** Re-reads every file (SIGHUP). Never rejects. */
  async reload(): Promise<void> {
    await Promise.all([...this.#files.values()].map(({ file }) => file.reload()))
  }

  close(): void {
    for (const { file } of this.#files.values()) file.close()
    this.#files.clear()
  }

  async #providerFor(upstream: UpstreamCredentialSettings): Promise<CredentialProvider | undefined> {
    if (upstream.gcrKeyPath !== undefined) {
      const key = await this.#open(upstream.gcrKeyPath, 'service-account key', parseServiceAccountKey, upstream.name)
      return new GcrKeyCredentials({ key, flow: upstream.gcrKeyFlow, post: this.#options.postFor(upstream.name) })
    }
    if (upstream.pullCredentialConfigPath !== undefined) {
      const file = await this.#open(upstream.pullCredentialConfigPath, 'Docker config', parseDockerConfig, upstream.name)
      return new DockerConfigCredentials({ file, hosts: [upstream.name, ...upstream.hosts] })
    }
    return undefined
  }

  async #open<T>(path: string, kind: string, parse: CredentialParser<T>, upstream: string): Promise<CredentialFile<T>> {
    // The same path read as two kinds (a key and a config.json) would be two different files.
    const id = `${kind}\n${path}`
    let open = this.#files.get(id)
    if (open === undefined) {
      const file = await CredentialFile.open(path, parse).catch((err: unknown) => {
        throw new Error(`upstream ${upstream}: ${kind} file ${err instanceof Error ? err.message : path}`)
      })
      const entry: OpenFile = { file: file as CredentialFile<unknown>, upstreams: [] }
      file.onReport((report) => this.#options.onReload({ ...report, upstreams: [...entry.upstreams] }))
      this.#files.set(id, entry)
      open = entry
    }
    open.upstreams.push(upstream)
    return open.file as CredentialFile<T>
  }
}
