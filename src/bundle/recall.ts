// A rerun after a complete run: the staging repository was emptied, but the images the previous
// run's digest map lists hold every blob it pushed. Their manifests are read (a GET each, children
// of an index too) and their blobs filed as present there, so the rerun mounts them from there
// and uploads no blob bytes. What cannot be read is simply not known: only a slower rerun.
import { digestBytes, type Digest } from '../core/digest.js'
import { parseManifest } from '../core/manifest.js'
import { Limiter } from './limiter.js'
import type { PushContext } from './push-context.js'

/** An image a previous run pushed: its repository on this destination and its digest. */
export interface EarlierImage {
  repository: string
  digest: Digest
}

export async function recallEarlier(context: PushContext, earlier: EarlierImage[], concurrency: number): Promise<void> {
  const { sink, signal, homes } = context
  const readManifest = sink.readManifest?.bind(sink)
  if (readManifest === undefined) return
  const read = async (repository: string, digest: Digest, depth: number): Promise<void> => {
    const found = await readManifest(repository, digest, signal).catch(() => undefined)
    if (found === undefined || digestBytes(found.bytes) !== digest) return
    let parsed
    try {
      parsed = parseManifest(found.bytes, found.mediaType)
    } catch {
      return
    }
    for (const blob of parsed.blobs) if (!homes.has(blob.digest)) homes.set(blob.digest, Promise.resolve(repository))
    if (depth < 2) await Promise.all(parsed.manifests.map((child) => read(repository, child.digest, depth + 1)))
  }
  const pool = new Limiter(concurrency)
  await Promise.all(earlier.map((image) => pool.run(() => read(image.repository, image.digest, 0))))
}
