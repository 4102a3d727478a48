// Decompressing a stream. gzip uses node:zlib. Node 20's zlib has neither zstd nor xz, so those
// (and bzip2) go through the system's `zstd`, `xz` and `bzip2` programs in a streaming pipe
// rather than npm packages: the native packages fetch prebuilt binaries at install time, which
// an air-gapped site cannot, and the pure-JS decoders are several times slower than the C tools
// (xz even decodes multi-block files on every core with -T0). The tools are Debian's `zstd`,
// `xz-utils` and `bzip2`. Measured against @napi-rs/lzma (lzma-rust2, whole buffers only) on a
// docker save of real files: `xz` took 4.8 CPU s for 541 MiB, the Rust decoder 8.5.
// A bundle file is handed to the program as its stdin (decompressFile): its bytes never pass
// through Node on the way in.
import { spawn } from 'node:child_process'
import { closeSync, createReadStream, openSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { Compression } from './magic.js'

const programs: Record<Exclude<Compression, 'gzip'>, { command: string; args: string[]; debian: string }> = {
  zstd: { command: 'zstd', args: ['-d', '-c', '-q'], debian: 'zstd' },
  xz: { command: 'xz', args: ['-d', '-c', '-q', '-T0'], debian: 'xz-utils' },
  bzip2: { command: 'bzip2', args: ['-d', '-c', '-q'], debian: 'bzip2' },
}

// A decompressor's complaint is quoted in errors; more than this is noise.
const maxStderr = 4096

/**
 * The decompressed bytes of `input`. Errors (a truncated or corrupt stream, a missing program)
 * surface on the returned stream, named `what` and the format.
 */
export function decompress(kind: Compression, input: Readable, what: string): Readable {
  if (kind === 'gzip') {
    const gunzip = createGunzip()
    // Errors of either side surface while reading gunzip's output, named after the archive.
    pipeline(input, gunzip).catch(() => undefined)
    async function* inflated(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of gunzip) yield chunk as Buffer
      } catch (err) {
        throw new Error(`${what}: gzip data is corrupt or truncated (${(err as Error).message})`, { cause: err })
      }
    }
    return Readable.from(inflated())
  }
  return run(kind, input, what)
}

/**
 * The decompressed bytes of the file at `path` (its head already sniffed as `kind`), telling
 * `onRead` how far into the file the program has read, every quarter second (on Linux, where
 * the shared file offset shows in /proc). Errors surface on the returned stream, as decompress's.
 */
export function decompressFile(kind: Compression, path: string, what: string, onRead?: (bytes: number) => void): Readable {
  if (kind === 'gzip') return decompress(kind, createReadStream(path, { highWaterMark: 1024 * 1024 }), what)
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    const error = new Error(`${what}: ${(err as Error).message}`)
    return new Readable({
      read() {
        this.destroy(error)
      },
    })
  }
  const output = run(kind, fd, what)
  // The child has its own descriptor of the same open file: ours only shows where it has got to.
  const report = (): void => {
    void readFile(`/proc/self/fdinfo/${fd}`, 'latin1').then(
      (info) => {
        const position = /^pos:\s+(\d+)/m.exec(info)?.[1]
        if (position !== undefined && !closed) onRead?.(Number(position))
      },
      () => clearInterval(timer),
    )
  }
  let closed = false
  const timer = setInterval(report, 250)
  timer.unref()
  output.once('close', () => {
    closed = true
    clearInterval(timer)
    closeSync(fd)
  })
  return output
}

/** Runs the program over `input` (a stream, or a file descriptor it reads itself). */
function run(kind: Exclude<Compression, 'gzip'>, input: Readable | number, what: string): Readable {
  const program = programs[kind]
  const child = spawn(program.command, program.args, { stdio: [typeof input === 'number' ? input : 'pipe', 'pipe', 'pipe'] })
  const output = new PassThrough()
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < maxStderr) stderr += chunk
  })
  let failed = false
  const fail = (message: string): void => {
    if (failed) return
    failed = true
    if (typeof input !== 'number') input.destroy()
    child.kill('SIGKILL')
    output.destroy(new Error(`${what}: ${message}`))
  }
  child.once('error', (err: NodeJS.ErrnoException) =>
    fail(
      err.code === 'ENOENT'
        ? `${kind} data needs the ${program.command} program (apt-get install ${program.debian})`
        : `${program.command}: ${err.message}`,
    ),
  )
  // A consumer that stops reading (an error further down) ends the child with it.
  output.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  if (typeof input !== 'number') {
    pipeline(input, child.stdin!).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code
      // The child exiting early (corrupt data) breaks the pipe; its exit status says why.
      if (code !== 'EPIPE' && code !== 'ERR_STREAM_PREMATURE_CLOSE') fail(`reading: ${(err as Error).message}`)
    })
  }
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)))
  void (async () => {
    try {
      for await (const chunk of child.stdout!) {
        if (!output.write(chunk)) await drained(output)
        if (failed || output.destroyed) return
      }
    } catch (err) {
      fail(`${program.command}: ${(err as Error).message}`)
      return
    }
    const code = await exited
    if (code === 0) output.end()
    else fail(`${kind} data is corrupt or truncated (${program.command}: ${stderr.trim().split('\n').pop() || `exit ${code}`})`)
  })()
  return output
}

function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('close', done)
      resolve()
    }
    stream.once('drain', done)
    stream.once('close', done)
  })
}
