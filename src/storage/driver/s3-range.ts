// Reads of S3 objects as exactly the bytes asked for.
import { Readable } from 'node:stream'
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3'

/**
 * The body of a GET as exactly bytes `start`..`end`: some stores ignore part of a Range (s3rver
 * serves `bytes=0-0` whole), so the answered Content-Range is checked and the body cut to fit.
 */
export function exactRange(response: GetObjectCommandOutput, start: number, end: number | undefined): Readable {
  const body = response.Body as Readable | undefined
  if (body === undefined) return Readable.from([])
  const answered = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.ContentRange ?? '')
  const from = answered ? Number(answered[1]) : 0
  const length = response.ContentLength ?? 0
  const wanted = end === undefined ? from + length - start : Math.min(end + 1, from + length) - start
  if (from === start && wanted === length) return body
  const cut = Readable.from(slice(body, start - from, Math.max(0, wanted)), { objectMode: false })
  // Destroyed before its first read, the generator never runs: the response would keep its socket.
  cut.once('close', () => body.destroy())
  return cut
}

async function* slice(source: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let skipped = 0
  let sent = 0
  for await (const chunk of source) {
    let piece = chunk as Buffer
    if (skipped < skip) {
      const n = Math.min(skip - skipped, piece.length)
      skipped += n
      piece = piece.subarray(n)
    }
    if (piece.length === 0) continue
    const take = Math.min(piece.length, length - sent)
    yield piece.subarray(0, take)
    sent += take
    if (sent >= length) return
  }
}
