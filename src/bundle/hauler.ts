// Hauler hauls (`hauler store save` writes `haul.tar.zst`): an OCI image layout of Hauler's store
// plus a Docker manifest.json. Its index.json names each entry by `org.opencontainers.image.ref.name`
// without the registry host (`library/busybox:1.36`; files `hauler/<file>:latest`, charts
// `hauler/<chart>:<version>`, which name them well enough), images also by
// `io.containerd.image.name`, and says what each is in a `kind` annotation (`dev.hauler/image`,
// `dev.hauler/imageIndex`, `dev.hauler/sigs`, `…/atts`, `…/sboms`, `dev.hauler/referrers/<hex>`;
// older stores `dev.cosignproject.cosign/…`; the newest write none and tell by the manifest).
//
// Cosign signatures, attestations and SBOMs carry the ref.name of their image and no `subject`:
// as `hauler store copy` does, they go to their image's repository under cosign's tag
// `sha256-<subject hex>.sig|.att|.sbom`, the subject being `hauler.dev/subject-digest` (a
// platform's signature) or the image of the same name. OCI 1.1 referrers have a `subject` and
// are handled like any layout's (plan.ts). `hauler-index.json`, which `--containerd` hauls carry
// beside an index.json cut down to images, is read in its place (collector.ts keeps it).
import { digestEncoded, tryParseDigest, type Digest } from '../core/digest.js'
import type { BundleContent } from './content.js'

export type CosignKind = 'sig' | 'att' | 'sbom'

const kindAnnotation = 'kind'
const subjectAnnotation = 'hauler.dev/subject-digest'
const refName = 'org.opencontainers.image.ref.name'
const kindPattern = /^(?:dev\.hauler|dev\.cosignproject\.cosign)\/(sigs|atts|sboms)(?:\/.*)?$/
const extensions: Record<string, CosignKind> = { sigs: 'sig', atts: 'att', sboms: 'sbom' }
// What cosign's artifacts hold, for stores that no longer write `kind`.
const layerKinds: Array<[RegExp, CosignKind]> = [
  [/^application\/vnd\.dev\.cosign\.simplesigning\.v1\+json$/, 'sig'],
  [/^application\/vnd\.dsse\.envelope\.v1\+json$/, 'att'],
  [/^(text\/spdx(\+json|\+xml)?|application\/vnd\.cyclonedx(\+json|\+xml)?|application\/vnd\.syft\+json)$/, 'sbom'],
]

export interface LayoutEntry {
  digest: Digest | undefined
  annotations: Record<string, unknown>
}

/** A plan's placement: its repository path and name (plan.ts' ImagePlan, the fields this reads and sets). */
export interface Placed {
  source: string | undefined
  path: string
  tag: string | undefined
  digest: Digest
  manifests: Array<{ digest: Digest }>
  problem?: string
  referrerOf?: string | undefined
}

/**
 * Cosign's artifacts in a layout (Hauler's, or any that names them alike): each moved to its
 * image's repository under the cosign tag. `entries[i]` is the index.json entry of `plans[i]`.
 */
export function withCosignTags<P extends Placed>(content: BundleContent, entries: LayoutEntry[], plans: P[]): P[] {
  const names = entries.map((entry) =>
    typeof entry.annotations[refName] === 'string' ? (entry.annotations[refName] as string) : undefined,
  )
  const kinds = entries.map((entry, i) => cosignKind(entry.annotations, content.documents.get(plans[i]!.digest), names, i))
  return plans.map((plan, i) => {
    const kind = kinds[i]
    if (kind === undefined || plan.problem !== undefined) return plan
    const annotated = entries[i]!.annotations[subjectAnnotation]
    const subject =
      (typeof annotated === 'string' ? tryParseDigest(annotated) : undefined) ??
      entries.find((entry, j) => j !== i && kinds[j] === undefined && names[j] === names[i] && !isReferrerKind(entry))?.digest
    const owner =
      subject && plans.find((other, j) => kinds[j] === undefined && other.path !== '' && other.manifests.some((m) => m.digest === subject))
    if (subject === undefined || owner === undefined) return plan
    return { ...plan, source: undefined, path: owner.path, tag: `sha256-${digestEncoded(subject)}.${kind}`, referrerOf: owner.source }
  })
}

function isReferrerKind(entry: LayoutEntry): boolean {
  const kind = entry.annotations[kindAnnotation]
  return typeof kind === 'string' && kind.includes('/referrers')
}

/**
 * Whether an entry is a cosign signature, attestation or SBOM: by its `kind`, or, with none, by
 * its layers when another entry has the same name (a standalone artifact keeps its own name).
 */
function cosignKind(annotations: Record<string, unknown>, manifest: Buffer | undefined, names: Array<string | undefined>, i: number) {
  const kind = annotations[kindAnnotation]
  if (typeof kind === 'string') {
    const match = kindPattern.exec(kind)
    return match === null ? undefined : extensions[match[1]!]
  }
  if (manifest === undefined || names[i] === undefined || !names.some((name, j) => j !== i && name === names[i])) return undefined
  let document: { subject?: unknown; layers?: Array<{ mediaType?: unknown }> }
  try {
    document = JSON.parse(manifest.toString('utf8')) as typeof document
  } catch {
    return undefined
  }
  if (document.subject !== undefined || !Array.isArray(document.layers) || document.layers.length === 0) return undefined
  for (const [pattern, found] of layerKinds) {
    if (document.layers.every((layer) => typeof layer.mediaType === 'string' && pattern.test(layer.mediaType))) return found
  }
  return undefined
}
