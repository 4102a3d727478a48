// A request body whose bytes stop leaving: the far end (or a middlebox) stopped reading, the
// connection is stuck, and nothing would end the request before the headers timeout, which must
// also cover a registry committing a large blob after the last byte. The body is passed on in
// the pace the connection takes it; bytes that wait longer than `ms` for it end the body with a
// retryable timeout, so the request fails and the caller's retry sends it again. A slow source
// (a bundle still being read) is never a stall: only bytes ready to go and not taken count.
import { Readable } from 'node:stream'
import { ClientError } from './client-error.js'

export function watchSendStall(source: Readable, ms: number, what: string): Readable {
  const iterator = source[Symbol.asyncIterator]()
  let timer: NodeJS.Timeout | undefined
  const disarm = (): void => {
    clearTimeout(timer)
    timer = undefined
  }
  const out = new Readable({
    // Small: what the connection has not taken is what is watched.
    highWaterMark: 64 * 1024,
    read() {
      // The connection asked for more: whatever was waiting has gone.
      disarm()
      iterator.next().then(
        (next) => {
          if (out.destroyed) return
          if (next.done === true) return void out.push(null)
          out.push(next.value as Buffer)
          // Until the connection asks again, these bytes wait on it.
          disarm()
          timer = setTimeout(() => {
            out.destroy(new ClientError('timeout', `${what}: the connection took no body bytes for ${ms / 1000} s`, { retryable: true }))
          }, ms)
        },
        (err: unknown) => out.destroy(err as Error),
      )
    },
    destroy(err, callback) {
      disarm()
      // The source is left to its owner when it failed; else it is no longer needed.
      if (err === null || !source.destroyed) source.destroy()
      callback(err)
    },
  })
  return out
}

/**
 * The same watch over a body of lent chunks (`LentBody` in http-exchange.ts), which the client
 * takes one at a time: a chunk given and not taken for `ms` calls `stop` with a retryable timeout,
 * which aborts the request.
 */
export async function* watchLentStall(
  source: AsyncIterable<Buffer>,
  ms: number,
  what: string,
  stop: (err: Error) => void,
): AsyncGenerator<Buffer> {
  let timer: NodeJS.Timeout | undefined
  try {
    for await (const chunk of source) {
      timer = setTimeout(() => {
        stop(new ClientError('timeout', `${what}: the connection took no body bytes for ${ms / 1000} s`, { retryable: true }))
      }, ms)
      yield chunk
      clearTimeout(timer)
    }
  } finally {
    clearTimeout(timer)
  }
}
