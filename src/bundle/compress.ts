// Compressing a bundle as it is written. gzip uses node:zlib (its header carries no time, so the
// output is the same every run); zstd and xz go through the system programs, as decompress.ts
// reads them, writing straight into the output file. zstd's multi-threaded output does not depend
// on the thread count; xz's does only between one core (single-threaded mode) and several.
import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { open } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'

export type OutputCompression = 'none' | 'gzip' | 'zstd' | 'xz'
export const outputCompressions: readonly OutputCompression[] = ['none', 'gzip', 'zstd', 'xz']

const programs = {
  zstd: { command: 'zstd', args: ['-q', '-c', '-3', '-T0'], debian: 'zstd' },
  xz: { command: 'xz', args: ['-q', '-c', '-6', '-T0'], debian: 'xz-utils' },
} as const

/** What an output name asks for: `.tar.zst`, `.tzst` → zstd; `.gz`, `.tgz` → gzip; `.xz`, `.txz` → xz; else none. */
export function compressionForName(path: string): OutputCompression {
  if (/\.(zst|tzst)$/i.test(path)) return 'zstd'
  if (/\.(gz|tgz)$/i.test(path)) return 'gzip'
  if (/\.(xz|txz)$/i.test(path)) return 'xz'
  return 'none'
}

/** Writes `source` to `file`, compressed as `kind`. Rejects when writing or the program fails. */
export async function writeCompressed(source: Readable, kind: OutputCompression, file: string): Promise<void> {
  if (kind === 'none') return pipeline(source, createWriteStream(file))
  if (kind === 'gzip') return pipeline(source, createGzip({ level: 6 }), createWriteStream(file))
  const program = programs[kind]
  const handle = await open(file, 'w')
  try {
    const child = spawn(program.command, [...program.args], { stdio: ['pipe', handle.fd, 'pipe'] })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk
    })
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new Error(`${kind} output needs the ${program.command} program (apt-get install ${program.debian})`)
            : err,
        ),
      )
      child.once('close', (code) => resolve(code))
    })
    const fed = pipeline(source, child.stdin!)
    // Either side may fail first; the program's exit status says more than a broken pipe.
    const [fedResult, code] = await Promise.allSettled([fed, exited])
    if (code.status === 'rejected') throw code.reason
    if (code.value !== 0) throw new Error(`${program.command} failed (exit ${code.value}): ${stderr.trim()}`)
    if (fedResult.status === 'rejected') throw fedResult.reason
  } finally {
    await handle.close()
  }
}
