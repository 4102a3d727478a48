// `ferry bundle ls`: the images of a bundle as a tree. Ferry's own bundles answer from their
// table of contents (the first tar entry, toc.ts); any other bundle the reader understands is read
// once through the collector without uploading anything, and its tree built from the manifests.
import { digestBytes, type Digest } from '../core/digest.js'
import { Collector } from './collector.js'
import { resolveImage } from './image-graph.js'
import { planImages } from './plan.js'
import { Spool } from './spool.js'
import { readToc, type BundleImage } from './toc.js'

export interface BundleListing {
  /** `toc`: read from Ferry's table of contents; `scan`: the whole bundle was read. */
  from: 'toc' | 'scan'
  images: Array<BundleImage & { problem?: string }>
  /** Bytes of the bundle file read. */
  bytesRead: number
}

export async function listBundle(path: string, signal?: AbortSignal): Promise<BundleListing> {
  const head = await readToc(path).catch(() => undefined)
  if (head?.toc !== undefined) return { from: 'toc', images: head.toc.images, bytesRead: head.bytesRead }
  let bytesRead = 0
  const spool = new Spool()
  const collector = new Collector({ spool, onRead: (bytes) => (bytesRead = bytes), ...(signal ? { signal } : {}) })
  try {
    await collector.read(path)
  } finally {
    await spool.close()
  }
  const { documents } = collector.content
  const images: BundleListing['images'] = []
  for (const plan of planImages(collector.content)) {
    const reference = plan.source ?? (plan.digest === '' ? plan.archive : `(no name)@${plan.digest}`)
    const root = plan.manifests.at(-1)
    if (plan.problem !== undefined || root === undefined) {
      images.push({ reference, digest: plan.digest, mediaType: plan.mediaType, size: 0, problem: plan.problem ?? 'no manifest' })
      continue
    }
    const fetch = async (digest: Digest) => {
      const child = plan.manifests.find((m) => m.digest === digest)
      const bytes = child?.bytes ?? documents.get(digest)
      if (bytes === undefined) throw new Error(`manifest ${digest} is missing`)
      return { digest: digestBytes(bytes), mediaType: child?.mediaType ?? '', bytes }
    }
    try {
      const resolved = await resolveImage({ digest: root.digest, mediaType: root.mediaType, bytes: root.bytes }, fetch)
      images.push({ reference, ...resolved.tree })
    } catch (err) {
      images.push({ reference, digest: plan.digest, mediaType: plan.mediaType, size: 0, problem: (err as Error).message })
    }
  }
  return { from: 'scan', images, bytesRead }
}
