// The storage layout, in one place. Every path handed to a driver is built here from validated
// digests, repository names, tags and upload ids, so no request input ever becomes a path as is.
//
//   blobs/<alg>/<first two hex>/<hex>/data                       content-addressed bytes (blobs and manifests)
//   repositories/<name>/_layers/<alg>/<hex>/link                  blob is available in <name>
//   repositories/<name>/_manifests/revisions/<alg>/<hex>/link     manifest is in <name>: {"mediaType","size"}
//   repositories/<name>/_manifests/tags/<tag>/link                tag → digest
//   repositories/<name>/_manifests/referrers/<alg>/<hex>/<alg>-<hex>   referrer descriptor (JSON) of a subject
//   where listing is costly (S3), index objects instead of listings:
//   repositories/<name>/_manifests/tag-index                     ["tag", ...]
//   repositories/<name>/_manifests/referrers/<alg>/<hex>/index   ["<alg>-<hex>", ...]
//   repositories/<name>/_repository                              the repository exists
//   repositories/[<storage prefix>/]_catalog                     ["name", ...] with manifests
//   repositories/<name>/_uploads/<id>/data                        upload in progress (older versions also wrote `startedat`)
//   repositories/<name>/_uploads/<id>/hashstate                   its running sha256's saved state (S3 only)
//
// Repository name components start with [a-z0-9], so `_layers`, `_manifests` and `_uploads`
// can never collide with a nested repository name.
import { digestAlgorithm, digestEncoded, type Digest } from '../core/digest.js'
import type { RepositoryName } from '../core/reference.js'

export const repositoriesRoot = 'repositories'

export function blobDataPath(digest: Digest): string {
  const hex = digestEncoded(digest)
  return `blobs/${digestAlgorithm(digest)}/${hex.slice(0, 2)}/${hex}/data`
}

export function repositoryPath(name: RepositoryName): string {
  return `${repositoriesRoot}/${name}`
}

export function layerLinkPath(name: RepositoryName, digest: Digest): string {
  return `${repositoryPath(name)}/_layers/${digestAlgorithm(digest)}/${digestEncoded(digest)}/link`
}

export function manifestsPath(name: RepositoryName): string {
  return `${repositoryPath(name)}/_manifests`
}

export function revisionLinkPath(name: RepositoryName, digest: Digest): string {
  return `${manifestsPath(name)}/revisions/${digestAlgorithm(digest)}/${digestEncoded(digest)}/link`
}

export function tagsPath(name: RepositoryName): string {
  return `${manifestsPath(name)}/tags`
}

export function tagPath(name: RepositoryName, tag: string): string {
  return `${tagsPath(name)}/${tag}`
}

export function tagLinkPath(name: RepositoryName, tag: string): string {
  return `${tagPath(name, tag)}/link`
}

export function referrersPath(name: RepositoryName, subject: Digest): string {
  return `${manifestsPath(name)}/referrers/${digestAlgorithm(subject)}/${digestEncoded(subject)}`
}

export function referrerLinkPath(name: RepositoryName, subject: Digest, referrer: Digest): string {
  return `${referrersPath(name, subject)}/${digestAlgorithm(referrer)}-${digestEncoded(referrer)}`
}

/** Sorted tag names of a repository (an index object, used where listing is costly). */
export function tagIndexPath(name: RepositoryName): string {
  return `${manifestsPath(name)}/tag-index`
}

/** Referrer entries of a subject (an index object; entry names always hold a '-'). */
export function referrerIndexPath(name: RepositoryName, subject: Digest): string {
  return `${referrersPath(name, subject)}/index`
}

/** Present once the repository holds (or held) a blob or manifest: existence without a listing. */
export function repositoryMarkerPath(name: RepositoryName): string {
  return `${repositoryPath(name)}/_repository`
}

/** The repositories of a registry that hold manifests (storage prefix '' or `_cache`). */
export function catalogIndexPath(storagePrefix: string): string {
  return storagePrefix === '' ? `${repositoriesRoot}/_catalog` : `${repositoriesRoot}/${storagePrefix}/_catalog`
}

export function uploadsPath(name: RepositoryName): string {
  return `${repositoryPath(name)}/_uploads`
}

export function uploadPath(name: RepositoryName, id: string): string {
  return `${uploadsPath(name)}/${id}`
}

export function uploadDataPath(name: RepositoryName, id: string): string {
  return `${uploadPath(name, id)}/data`
}

export function uploadHashStatePath(name: RepositoryName, id: string): string {
  return `${uploadPath(name, id)}/hashstate`
}

export function uploadStartedAtPath(name: RepositoryName, id: string): string {
  return `${uploadPath(name, id)}/startedat`
}

const uploadIdGrammar = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Upload ids are UUIDs we minted; anything else is unknown (and never reaches a path). */
export function isUploadId(id: string): boolean {
  return uploadIdGrammar.test(id)
}
