// `ferry extract <oci-layout-dir | ref> <dir>`: unpacks an image's layers (or an artifact's
// titled files) into a folder, from an OCI layout on disk or straight from a registry.
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { resolveFrom } from '../bundle/bundle-create.js'
import { extractImage, type ExtractSource } from '../bundle/extract.js'
import { hostPlatform, parsePlatform } from '../bundle/image-graph.js'
import { parseImageRef } from '../bundle/image-ref.js'
import { readLayoutImage } from '../bundle/oci-layout.js'
import type { RegistrySource } from '../bundle/registry-source.js'
import type { CliIo } from './io.js'
import { addAccessOptions, registrySource, type AccessOptions } from './registry-access.js'

interface ExtractFlags extends AccessOptions {
  ref?: string
  platform?: string
}

export function addExtractCommand(program: Command, io: CliIo): void {
  addAccessOptions(
    program
      .command('extract')
      .description("unpack an image's layers (whiteouts applied, nothing outside <dir>) or an artifact's titled files into a folder")
      .argument('<source>', 'an OCI layout folder, or an image reference to read from its registry')
      .argument('<dir>', 'the folder to write into (created if need be)')
      .option('--ref <name>', 'which image of a layout folder holding several (its ref.name)')
      .option('--platform <os/arch[/variant]>', "the platform of a multi-arch image (default: this machine's)"),
  ).action(async (from: string, dir: string, flags: ExtractFlags) => {
    io.exit(await extract(from, dir, flags, io))
  })
}

async function extract(from: string, dir: string, flags: ExtractFlags, io: CliIo): Promise<number> {
  let registry: RegistrySource | undefined
  try {
    const platform = flags.platform === undefined ? hostPlatform() : parsePlatform(flags.platform)
    const options = { platforms: [platform], singleManifest: true }
    let source: ExtractSource
    let name = from
    const folder = (await stat(from).catch(() => undefined))?.isDirectory() === true
    if (folder && (await stat(join(from, 'index.json')).catch(() => undefined))?.isFile() !== true) {
      throw new Error(`${from} is a folder but not an OCI image layout (it has no index.json)`)
    }
    if (folder) {
      const layout = await readLayoutImage(from, flags.ref, options)
      source = layout
      name = `${from} (${layout.name ?? 'no name'})`
    } else {
      const ref = parseImageRef(from)
      registry = await registrySource(flags)
      const image = await resolveFrom(registry, ref, options.platforms, true)
      const client = registry
      source = { image, openBlob: (d) => client.blob(ref, d.digest, d.size) }
      name = `${ref.text}@${image.root.digest}`
    }
    const report = await extractImage(source, dir, { asRoot: process.getuid?.() === 0 })
    for (const skipped of report.skipped) io.stderr.write(`skipped ${skipped.path}: ${skipped.reason}\n`)
    const files = report.files.length > 0 ? `, ${report.files.length} file(s): ${report.files.join(', ')}` : ''
    io.stdout.write(
      `${name} → ${dir}: ${report.layers} layer(s)${files}${report.skipped.length > 0 ? `, ${report.skipped.length} entries skipped` : ''}\n`,
    )
    return 0
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n`)
    return 1
  } finally {
    await registry?.close()
  }
}
