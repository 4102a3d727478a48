export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  octetStream: 'application/octet-stream',
} as const

/** The manifest media types Ferry stores and serves. */
export const manifestMediaTypes: readonly string[] = [
  mediaTypes.ociManifest,
  mediaTypes.ociIndex,
  mediaTypes.dockerManifest,
  mediaTypes.dockerManifestList,
]

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === mediaTypes.ociIndex || mediaType === mediaTypes.dockerManifestList
}

export function isManifestMediaType(mediaType: string): boolean {
  return manifestMediaTypes.includes(mediaType)
}

/** Strips parameters and whitespace: `application/json; charset=utf-8` → `application/json`. */
export function baseMediaType(value: string | undefined): string {
  return (value ?? '').split(';', 1)[0]!.trim().toLowerCase()
}

/**
 * Whether a manifest of `mediaType` may be served to a client accepting `accepted`. No Accept,
 * a wildcard, or an Accept naming no manifest type at all (old clients send `application/json`)
 * accepts anything; a list of manifest types that lacks this one does not.
 */
export function isAcceptable(mediaType: string, accepted: readonly string[]): boolean {
  if (accepted.length === 0 || accepted.includes(mediaType)) return true
  if (accepted.includes('*/*') || accepted.includes('application/*')) return true
  return !accepted.some(isManifestMediaType)
}

/** Whether `accepted` takes every manifest type (no Accept, `*\/*`, or no manifest type named): the upstream may send any. */
export function acceptsEveryManifestType(accepted: readonly string[]): boolean {
  return manifestMediaTypes.every((mediaType) => isAcceptable(mediaType, accepted))
}
