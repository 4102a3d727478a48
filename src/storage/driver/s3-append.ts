// Append files on S3. An object cannot grow, and rewriting it per append would copy the upload
// again on every PATCH (quadratic), so an append file is a small index object at its own key,
// listing the sizes of its segments, plus one segment object per append session:
//
//   <dir>/<name>                                   index: {"segments":[size, ...]}, x-amz-meta-ferry-append
//   <dir>/.ferry-append/<name>/<000001, ...>       the segments' bytes, in order
//
// Segments sit beside the file rather than under `<name>/`, because some stores (MinIO) refuse
// a key that is also the prefix of another. Deleting the folder deletes them with the file; the
// reserved `.ferry-append` name never appears in list(). Each append session costs one GET of the
// index, its segment upload and one PUT of the index; reading costs the index GET plus one ranged
// GET per segment touched.
import { GetObjectCommand, PutObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3'
import type { WriteSettings } from './s3-client.js'
import { exactRange } from './s3-range.js'
import type { PartBudget } from './s3-upload.js'

export const reservedName = '.ferry-append'
/** Object metadata (x-amz-meta-ferry-append) marking an index; its value is the format version. */
export const appendMarker = 'ferry-append'
/** Object metadata carrying the file's size, so a HEAD answers stat() without reading the index. */
export const appendSize = 'ferry-size'
/** Object metadata carrying the number of segments, so move and delete need no GET of the index. */
export const appendSegments = 'ferry-segments'

export interface AppendTarget {
  client: S3Client
  bucket: string
  /** The index key (the file's own key). */
  key: string
  settings: WriteSettings
  budget: PartBudget
  /** Sizes of the segments already committed, in order. */
  segments: number[]
  /** Whether anything is at the key yet (a new file's index is written even when empty). */
  exists: boolean
}

export function segmentKey(key: string, number: number): string {
  const slash = key.lastIndexOf('/')
  return `${key.slice(0, slash + 1)}${reservedName}/${key.slice(slash + 1)}/${String(number).padStart(6, '0')}`
}

export function isIndex(metadata: Record<string, string> | undefined): boolean {
  return metadata?.[appendMarker] !== undefined
}

/** The keys of an index's segments, from its metadata. */
export function segmentKeys(key: string, metadata: Record<string, string> | undefined): string[] {
  const count = Number(metadata?.[appendSegments] ?? 0)
  return Array.from({ length: Number.isSafeInteger(count) ? count : 0 }, (_, i) => segmentKey(key, i + 1))
}

export async function writeIndex(file: Omit<AppendTarget, 'segments' | 'exists' | 'budget'>, segments: number[]): Promise<void> {
  const size = segments.reduce((sum, s) => sum + s, 0)
  await file.client.send(
    new PutObjectCommand({
      Bucket: file.bucket,
      Key: file.key,
      Body: JSON.stringify({ segments }),
      ContentType: 'application/json',
      Metadata: { [appendMarker]: '1', [appendSize]: String(size), [appendSegments]: String(segments.length) },
      ...file.settings,
    }),
  )
}

/** The segment sizes from an index object's body; throws on anything else. */
export async function parseIndex(response: GetObjectCommandOutput): Promise<number[]> {
  const text = (await response.Body?.transformToString('utf8')) ?? ''
  const parsed = JSON.parse(text) as { segments?: unknown }
  const segments = parsed.segments
  if (!Array.isArray(segments) || !segments.every((s) => Number.isSafeInteger(s) && (s as number) >= 0)) {
    throw new Error('malformed append index')
  }
  return segments as number[]
}

/** The whole index of the append file at `key`, given a GET response that showed it is one. */
export async function fetchIndex(client: S3Client, bucket: string, key: string): Promise<number[]> {
  return parseIndex(await client.send(new GetObjectCommand({ Bucket: bucket, Key: key })))
}

/** Bytes `start`..`end` (inclusive; undefined: to the end) of an append file, segment by segment. */
export async function* segmentBytes(
  get: (key: string, start: number, end: number) => Promise<GetObjectCommandOutput>,
  key: string,
  segments: number[],
  start: number,
  end: number | undefined,
): AsyncGenerator<Buffer> {
  const total = segments.reduce((sum, size) => sum + size, 0)
  const last = Math.min(end ?? total - 1, total - 1)
  let offset = 0
  for (const [index, size] of segments.entries()) {
    const segmentStart = Math.max(start, offset) - offset
    const segmentEnd = Math.min(last, offset + size - 1) - offset
    offset += size
    if (size === 0 || segmentEnd < segmentStart) continue
    const response = await get(segmentKey(key, index + 1), segmentStart, segmentEnd)
    for await (const chunk of exactRange(response, segmentStart, segmentEnd)) yield chunk as Buffer
  }
}
