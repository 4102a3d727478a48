// Upload bodies in reused buffers. A blob read from a file was read into a fresh 1 MiB buffer per
// read, and those buffers were a fifth of the CLI's CPU in garbage collection. These bodies lend
// their chunks instead: each chunk is valid only until the next is asked for, which is when the
// HTTP client has written it (client/http-exchange.ts, `LentBody`). Chunks smaller than
// `minLentChunk` may still sit in the socket's buffer when the next is asked for, so those are
// copies. A file range's bytes are not hashed here: the registry checks them (PUT `?digest=`).
import { open } from 'node:fs/promises'

const chunkBytes = 1024 * 1024
/** A write of at least the socket's high-water mark (64 KiB) is awaited before the next chunk is asked for. */
export const minLentChunk = 64 * 1024

/** The bytes [start, end) of a file, in two buffers used in turn: one is written while the other is read. */
export async function* fileChunks(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  if (end <= start) return
  const handle = await open(path, 'r')
  try {
    const buffers = [Buffer.allocUnsafe(Math.min(chunkBytes, end - start)), Buffer.allocUnsafe(Math.min(chunkBytes, end - start))]
    const read = async (buffer: Buffer, position: number): Promise<Buffer> => {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position)
      if (bytesRead === 0) throw new Error(`${path}: the file ended at byte ${position}, before ${end}`)
      return buffer.subarray(0, bytesRead)
    }
    let position = start
    let turn = 0
    let reading: Promise<Buffer> | undefined = read(buffers[0]!, position)
    while (reading !== undefined) {
      const chunk = await reading
      position += chunk.length
      turn ^= 1
      // The other buffer was taken when this one was asked for: it is free to read into.
      reading = position < end ? read(buffers[turn]!, position) : undefined
      // A failed read ahead is met when it is awaited; unhandled until then it must not crash.
      reading?.catch(() => undefined)
      yield chunk.length >= minLentChunk ? chunk : Buffer.from(chunk)
    }
  } finally {
    await handle.close()
  }
}

/** `source` as it is taken, telling `onSent` the bytes taken so far. */
export async function* meteredChunks(source: AsyncIterable<Buffer>, onSent: (bytes: number) => void): AsyncGenerator<Buffer> {
  let sent = 0
  for await (const chunk of source) {
    sent += chunk.length
    onSent(sent)
    yield chunk
  }
}
