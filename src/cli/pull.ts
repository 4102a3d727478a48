// `ferry pull <ref> <dest>`: one image from a registry into an OCI layout folder (merged with
// what the folder holds) or a docker-archive tar (Ferry's bundle format with one image: docker
// load, skopeo's docker-archive: and oci-archive: all read it). A docker archive holds one
// platform, so for a multi-arch image it takes the --platform one (default: this machine's).
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import { resolveFrom, resolveReferrers, toWrite } from '../bundle/bundle-create.js'
import { writeBundle } from '../bundle/bundle-writer.js'
import { compressionForName } from '../bundle/compress.js'
import { hostPlatform, type Platform } from '../bundle/image-graph.js'
import { parseImageRef } from '../bundle/image-ref.js'
import { writeLayout } from '../bundle/oci-layout.js'
import { formatSize } from '../bundle/toc.js'
import { parsePlatforms, parsePositive } from './bundle.js'
import type { CliIo } from './io.js'
import { addAccessOptions, registrySource, type AccessOptions } from './registry-access.js'

type PullFormat = 'oci' | 'docker-archive'

interface PullFlags extends AccessOptions {
  format?: PullFormat
  platform?: Platform[]
  singleManifest?: boolean
  /** false with --no-referrers. */
  referrers: boolean
  concurrency: number
}

export function addPullCommand(program: Command, io: CliIo): void {
  addAccessOptions(
    program
      .command('pull')
      .description('save one image from a registry to an OCI layout folder or a docker-archive tar')
      .argument('<ref>', 'image reference (host/repository:tag or @digest)')
      .argument('<dest>', 'a folder (OCI layout) or a .tar[.gz|.zst|.xz] file (docker-archive)')
      .option('--format <format>', 'oci | docker-archive (default: docker-archive for a .tar name, else oci)', parseFormat)
      .option('--platform <list>', 'keep only these platforms (os/arch[/variant],…); a docker archive takes the first', parsePlatforms)
      .option('--single-manifest', "keep only one platform's manifest (the --platform one, default this machine's), not the index")
      .option('--no-referrers', "leave out the image's referrers (signatures, SBOMs: manifests whose subject is it)")
      .option('--concurrency <n>', 'blobs downloaded at once', parsePositive, 4),
  ).action(async (ref: string, dest: string, flags: PullFlags) => {
    io.exit(await pull(ref, dest, flags, io))
  })
}

async function pull(reference: string, dest: string, flags: PullFlags, io: CliIo): Promise<number> {
  let source
  try {
    const ref = parseImageRef(reference)
    const format = flags.format ?? (/\.tar(\.(gz|zst|xz))?$/i.test(dest) ? 'docker-archive' : 'oci')
    source = await registrySource(flags)
    const single = flags.singleManifest === true || format === 'docker-archive'
    const platforms = flags.platform ?? (single ? [hostPlatform()] : undefined)
    const image = await resolveFrom(source, ref, platforms, single)
    const referrers = flags.referrers ? await resolveReferrers(source, ref, image) : []
    const write = toWrite(source, ref, image, undefined, referrers)
    if (format === 'oci') await writeLayout(dest, write, flags.concurrency)
    else {
      await writeBundle([write], {
        output: dest,
        compression: compressionForName(dest),
        concurrency: flags.concurrency,
        dockerPlatform: platforms?.[0] ?? hostPlatform(),
      })
    }
    const extra = referrers.length > 0 ? `, ${referrers.length} referrer(s)` : ''
    io.stdout.write(`${ref.text}@${image.root.digest} → ${dest} (${format}, ${formatSize(image.tree.size)}${extra})\n`)
    return 0
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n`)
    return 1
  } finally {
    await source?.close()
  }
}

function parseFormat(value: string): PullFormat {
  if (value !== 'oci' && value !== 'docker-archive') throw new InvalidArgumentError('expected oci or docker-archive')
  return value
}
