// Where the lifecycle keeps its own files, beside the registry layout of ../paths.ts:
//
//   lifecycle/access/<repository>/_times          push and pull times of one repository's manifests and tags (JSON)
//   lifecycle/quarantine/<alg>/<hex>              content scrub found corrupt, moved out of the blob store
//
// `_times` cannot be a repository name component (those start with [a-z0-9]).
import { digestAlgorithm, digestEncoded, type Digest } from '../../core/digest.js'

export const accessTimesRoot = 'lifecycle/access'

export function accessTimesPath(repository: string): string {
  return `${accessTimesRoot}/${repository}/_times`
}

export function quarantinePath(digest: Digest): string {
  return `lifecycle/quarantine/${digestAlgorithm(digest)}/${digestEncoded(digest)}`
}
