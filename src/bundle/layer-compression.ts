// --layer-compression: a legacy docker save's layers are plain tars, which a registry stores and
// nodes download as they are. Compressed on the way (the spool keeps the compressed bytes), they
// get a compressed media type and digest, while the config's diff_ids stay those of the plain
// tars. The output must be the same every run, so a rerun finds what the first run pushed and
// `@sha256:` references stay valid: gzip through node:zlib at a fixed level (1, as crane uses;
// the header carries no name and mtime 0, and zlib's output does not depend on how the input is
// chunked), zstd through the system program at level 3 in single-threaded mode (its
// multi-threaded frames differ). Both depend on the compressor's version, so "the same" holds for
// one Ferry build on one system.
import { spawn } from 'node:child_process'
import { PassThrough, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'

export type LayerCompression = 'none' | 'gzip' | 'zstd'
export const layerCompressions: readonly LayerCompression[] = ['none', 'gzip', 'zstd']

export const gzipLevel = 1
const zstd = { command: 'zstd', args: ['-q', '-c', '-3', '--single-thread'], debian: 'zstd' }
const maxStderr = 4096

/** The bytes of `input` compressed as `kind`; a failure (of the input or the compressor) surfaces on the returned stream. */
export function compressLayer(input: Readable, kind: Exclude<LayerCompression, 'none'>): Readable {
  if (kind === 'gzip') {
    const gzip = createGzip({ level: gzipLevel })
    pipeline(input, gzip).catch(() => undefined)
    return gzip
  }
  const child = spawn(zstd.command, zstd.args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const output = new PassThrough()
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < maxStderr) stderr += chunk
  })
  const fail = (err: Error): void => {
    input.destroy()
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    output.destroy(err)
  }
  child.once('error', (err: NodeJS.ErrnoException) =>
    fail(err.code === 'ENOENT' ? new Error(`--layer-compression zstd needs the zstd program (apt-get install ${zstd.debian})`) : err),
  )
  // A consumer that gives up ends the program with it.
  output.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  pipeline(input, child.stdin).catch((err: Error) => {
    const code = (err as NodeJS.ErrnoException).code
    // The input failing is the error to report; the program exiting early breaks the pipe, and its status says why.
    if (code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE') fail(err)
  })
  child.stdout.pipe(output, { end: false })
  child.once('close', (code) => {
    if (output.destroyed) return
    if (code === 0) output.end()
    else fail(new Error(`zstd failed (${stderr.trim().split('\n').pop() || `exit ${code}`})`))
  })
  return output
}
