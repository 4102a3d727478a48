import { tryParseDigest, type Digest } from './digest.js'
import { RegistryError } from './errors.js'

/** A validated repository name such as `library/nginx` or `test-namespace/a/b`. */
export type RepositoryName = string & { readonly __brand: 'RepositoryName' }

// The spec's name grammar. Components start and end with [a-z0-9], so `.`, `..`, `_x` and empty
// components can never appear: no name can climb out of a storage prefix or shadow the
// `_`-prefixed folders the storage layout keeps beside repository components.
const nameGrammar = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/
const tagGrammar = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/

/** Clients keep host plus name under 255 characters; we hold names to the same bound. */
export const maxRepositoryNameLength = 255

export function isRepositoryName(value: string): value is RepositoryName {
  return value.length <= maxRepositoryNameLength && nameGrammar.test(value)
}

export function parseRepositoryName(value: string): RepositoryName {
  if (!isRepositoryName(value)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { name: value.slice(0, 300) })
  }
  return value
}

export function isTag(value: string): boolean {
  return tagGrammar.test(value)
}

export function parseTag(value: string): string {
  if (!isTag(value)) throw new RegistryError('TAG_INVALID', 'invalid tag', { tag: value.slice(0, 300) })
  return value
}

/** A manifest reference is either a tag or a digest. */
export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest }

/**
 * Parses the `<reference>` of `/v2/<name>/manifests/<reference>`. Anything with a colon must be
 * a valid digest (DIGEST_INVALID otherwise); anything else must be a valid tag (TAG_INVALID).
 */
export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    const digest = tryParseDigest(value)
    if (!digest) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { digest: value.slice(0, 300) })
    return { kind: 'digest', digest }
  }
  return { kind: 'tag', tag: parseTag(value) }
}
