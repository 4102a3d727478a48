// Byte ranges: the `Range` header of a blob GET (RFC 9110, one range only) and the
// `Content-Range` of a chunked upload PATCH (the spec's `<start>-<end>`, inclusive).
import { RegistryError } from './errors.js'

/** An inclusive byte range within a blob. */
export interface ByteRange {
  start: number
  end: number
}

export type RangeRequest = { kind: 'none' } | { kind: 'satisfiable'; range: ByteRange } | { kind: 'unsatisfiable' }

/**
 * Interprets a `Range` header against a blob of `size` bytes. Headers that are not a single
 * `bytes=` range are ignored (served as a full 200), as RFC 9110 allows; a well-formed range
 * that lies outside the blob is unsatisfiable (416).
 */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' }
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (!match) return { kind: 'none' }
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return { kind: 'none' }
  if (first === '') {
    // Suffix range: the last N bytes.
    const length = Number(last)
    if (length === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'satisfiable', range: { start: Math.max(0, size - length), end: size - 1 } }
  }
  const start = Number(first)
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1)
  if (!Number.isSafeInteger(start) || start >= size || (last !== '' && Number(last) < start)) {
    return { kind: 'unsatisfiable' }
  }
  return { kind: 'satisfiable', range: { start, end } }
}

export function rangeLength(range: ByteRange): number {
  return range.end - range.start + 1
}

/**
 * Parses an upload `Content-Range`: `<start>-<end>` as the spec writes it, also accepting the
 * RFC form `bytes <start>-<end>/<total|*>` some clients send. Returns undefined when malformed.
 */
export function parseUploadContentRange(header: string): ByteRange | undefined {
  const match = /^\s*(?:bytes\s+)?(\d+)-(\d+)(?:\/(?:\d+|\*))?\s*$/i.exec(header)
  if (!match) return undefined
  const start = Number(match[1])
  const end = Number(match[2])
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return undefined
  return { start, end }
}

/** The `Range` header of an upload status: `0-<last byte>`, `0-0` for an empty upload as distribution does. */
export function uploadRangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`
}

/** How a blob read is bounded: an explicit range, or a client's Range header to resolve once the size is known. */
export interface RangeOptions {
  range?: ByteRange
  rangeHeader?: string
}

/**
 * The range of a blob of `size` bytes to serve, undefined for the whole blob. Throws
 * RANGE_INVALID (416, with `Content-Range: bytes * /size`) when the request cannot be satisfied.
 */
export function rangeToServe(size: number, options: RangeOptions): ByteRange | undefined {
  const request: RangeRequest = options.range
    ? options.range.start < size && options.range.end >= options.range.start
      ? { kind: 'satisfiable', range: { start: options.range.start, end: Math.min(options.range.end, size - 1) } }
      : { kind: 'unsatisfiable' }
    : parseRangeHeader(options.rangeHeader, size)
  if (request.kind === 'unsatisfiable') {
    throw new RegistryError(
      'RANGE_INVALID',
      'requested range is not satisfiable',
      { size },
      {
        status: 416,
        headers: { 'content-range': `bytes */${size}` },
      },
    )
  }
  return request.kind === 'satisfiable' ? request.range : undefined
}
