// `ferry bundle ls` and `ferry bundle create`: list what a bundle holds, and build one from a
// registry on the connected side of an air gap (src/bundle/bundle-create.ts does the work).
import { readFile, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { createBundle } from '../bundle/bundle-create.js'
import { listBundle } from '../bundle/bundle-list.js'
import { compressionForName, outputCompressions, type OutputCompression } from '../bundle/compress.js'
import { parsePlatform, type Platform } from '../bundle/image-graph.js'
import { formatSize, formatTree } from '../bundle/toc.js'
import { interruptedBySignals, type CliIo } from './io.js'
import { addAccessOptions, registrySource, type AccessOptions } from './registry-access.js'

const progressEveryMs = 5_000

interface CreateFlags extends AccessOptions {
  output: string
  images?: string
  platform?: Platform[]
  compression?: OutputCompression
  concurrency: number
  /** false with --no-referrers. */
  referrers: boolean
  json?: boolean
}

export function addBundleCommand(program: Command, io: CliIo): void {
  const bundle = program.command('bundle').description('image bundles for air-gapped sites')
  bundle
    .command('ls')
    .description("print the images of a bundle (reference, platform, digest, size); Ferry's own bundles answer from their first entry")
    .argument('<bundle>', 'bundle file (any format `ferry push images` reads) or folder')
    .option('--json', 'print JSON instead of a tree')
    .action(async (path: string, flags: { json?: boolean }) => {
      try {
        const listing = await listBundle(path)
        if (flags.json === true)
          io.stdout.write(
            `${JSON.stringify({ bundle: path, from: listing.from, bytesRead: listing.bytesRead, images: listing.images }, null, 2)}\n`,
          )
        else io.stdout.write(formatTree(listing.images))
        io.exit(listing.images.some((i) => i.problem !== undefined) ? 2 : 0)
      } catch (err) {
        io.stderr.write(`ferry: ${(err as Error).message}\n`)
        io.exit(1)
      }
    })
  addAccessOptions(
    bundle
      .command('create')
      .description(
        'pull images from a registry into one bundle: an OCI layout tar with a table of contents first and a Docker manifest.json',
      )
      .argument('[refs...]', 'image references (host/repository:tag or @digest)')
      .requiredOption('--output <file>', 'the bundle to write (.tar, .tar.gz, .tar.zst, .tar.xz: compressed by the name)')
      .option('--images <file>', 'a file of references, one a line (# comments)')
      .option('--platform <list>', 'keep only these platforms of multi-arch images (os/arch[/variant],…)', parsePlatforms)
      .option('--compression <kind>', `${outputCompressions.join('|')} (default: from the output name)`, parseCompression)
      .option('--concurrency <n>', 'images resolved and blobs downloaded at once', parsePositive, 8)
      .option('--no-referrers', "leave out the images' referrers (signatures, SBOMs: manifests whose subject is one of them)")
      .option('--json', 'a JSON summary on stdout'),
  ).action(async (refs: string[], flags: CreateFlags) => {
    io.exit(await create(refs, flags, io))
  })
}

async function create(refs: string[], flags: CreateFlags, io: CliIo): Promise<number> {
  const started = Date.now()
  let source
  try {
    const references = [...refs, ...(flags.images === undefined ? [] : listFile(await readFile(flags.images, 'utf8')))]
    if (references.length === 0) throw new Error('no images: give references or --images FILE')
    // Before any download: a typo in the output folder should not cost a pull.
    if ((await stat(dirname(resolve(flags.output))).catch(() => undefined))?.isDirectory() !== true) {
      throw new Error(`--output ${flags.output}: its folder does not exist`)
    }
    source = await registrySource(flags)
    // Ctrl-C stops the downloads; the partial bundle and its temp files are removed.
    const interrupted = interruptedBySignals(io)
    let done = 0
    let total = 0
    const timer = setInterval(() => {
      if (flags.json !== true && total > 0) io.stderr.write(`written ${formatSize(done)} of ${formatSize(total)}\n`)
    }, progressEveryMs)
    const result = await createBundle(source, {
      signal: interrupted,
      onPlan: (bytes) => (total = bytes),
      references,
      output: flags.output,
      compression: flags.compression ?? compressionForName(flags.output),
      concurrency: flags.concurrency,
      referrers: flags.referrers,
      ...(flags.platform ? { platforms: flags.platform } : {}),
      onImage: (reference, image) => {
        if (flags.json !== true) io.stderr.write(`resolved ${reference} → ${image.root.digest} (${formatSize(image.tree.size)})\n`)
      },
      onBlob: (bytes) => (done += bytes),
    }).finally(() => clearInterval(timer))
    const seconds = (Date.now() - started) / 1000
    if (flags.json === true) io.stdout.write(`${JSON.stringify({ output: flags.output, ...result, seconds })}\n`)
    else
      io.stderr.write(
        `wrote ${flags.output}: ${result.images} image(s), ${result.blobs} blobs, ${formatSize(done)} in ${seconds.toFixed(1)} s\n`,
      )
    return 0
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n`)
    return 1
  } finally {
    await source?.close()
  }
}

/** References from a file: one a line, blank lines and `#` comments skipped. */
export function listFile(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '')
}

export function parsePlatforms(value: string): Platform[] {
  try {
    return value.split(',').map(parsePlatform)
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

function parseCompression(value: string): OutputCompression {
  if (!(outputCompressions as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected ${outputCompressions.join(', ')}`)
  return value as OutputCompression
}

export function parsePositive(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('expected a whole number from 1 to 256')
  return n
}
