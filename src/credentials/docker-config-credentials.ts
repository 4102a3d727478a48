// Credentials for one upstream from a Docker config.json: the entry for its host (or one of the
// names it is known by), or what that entry's credential helper answers.
import type { CredentialProvider, Credentials } from '../client/credentials.js'
import type { CredentialFile } from './credential-file.js'
import { runCredentialHelper } from './credential-helper.js'
import { lookupDockerConfig, type DockerConfig } from './docker-config.js'

export interface DockerConfigCredentialsOptions {
  file: CredentialFile<DockerConfig>
  /** Further names the upstream is known by (its configured name, aliases), after the asked host. */
  hosts: readonly string[]
  /** How long a helper's answer is reused before it runs again. Default 60 s. */
  helperCacheMs?: number
  helperTimeoutMs?: number
  now?: () => number
}

interface HelperAnswer {
  key: string
  credentials: Promise<Credentials | undefined>
  until: number
}

export class DockerConfigCredentials implements CredentialProvider {
  readonly #options: DockerConfigCredentialsOptions
  readonly #now: () => number
  // Helpers can be slow (a keychain, a cloud CLI): a Basic-auth upstream asks per request.
  #helperAnswer: HelperAnswer | undefined

  constructor(options: DockerConfigCredentialsOptions) {
    this.#options = options
    this.#now = options.now ?? Date.now
  }

  generation(): number {
    return this.#options.file.generation
  }

  async credentials(host: string): Promise<Credentials | undefined> {
    const { file } = this.#options
    const found = lookupDockerConfig(file.value, [host, ...this.#options.hosts])
    if (found.kind === 'none') return undefined
    if (found.kind === 'credentials') return found.credentials
    const key = `${file.generation}\n${found.helper}\n${found.serverUrl}`
    const cached = this.#helperAnswer
    if (cached !== undefined && cached.key === key && this.#now() < cached.until) return cached.credentials
    const credentials = runCredentialHelper(found.helper, found.serverUrl, {
      ...(this.#options.helperTimeoutMs !== undefined ? { timeoutMs: this.#options.helperTimeoutMs } : {}),
    })
    const answer: HelperAnswer = { key, credentials, until: this.#now() + (this.#options.helperCacheMs ?? 60_000) }
    this.#helperAnswer = answer
    // A failed run is not reused: the next request runs the helper again.
    credentials.catch(() => {
      if (this.#helperAnswer === answer) this.#helperAnswer = undefined
    })
    return credentials
  }
}
