// `ferry push images`: pushes the images of a bundle file or folder into a namespace of a
// registry (src/bundle/importer.ts does the work). This file turns flags into a destination
// client and reports: progress every few seconds, one line per image, a summary, NDJSON with
// --json, the digest map, and the exit status (0 all landed, 2 some failed, 1 nothing done).
import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { InvalidArgumentError } from 'commander'
import type { RegistryClient } from '../client/registry-client.js'
import { tryParseDigest, type Digest } from '../core/digest.js'
import { isRepositoryName } from '../core/reference.js'
import { BundlePush } from '../bundle/importer.js'
import type { ImageResult, PushEvent, PushReport } from '../bundle/results.js'
import { RegistrySink } from '../bundle/registry-sink.js'
import { layerCompressions, type LayerCompression } from '../bundle/layer-compression.js'
import { nameStrategies, type NameStrategy } from '../bundle/naming.js'
import { parsePlatform, type Platform } from '../bundle/plan.js'
import { interruptedBySignals, type CliIo } from './io.js'
import { destinationClient, parseDestination, type Destination, type DestinationAccess } from './push-destination.js'
import { growOldGenerationInLargeSteps, oldGenerationRoom } from './old-generation.js'
import { PushProgress } from './push-progress.js'
import { formatReport, formatTable } from './push-report.js'

export interface PushImagesOptions extends DestinationAccess {
  source: string
  privateRegistry: string
  concurrency: number
  dryRun?: boolean
  json?: boolean
  keepGoing?: boolean
  digestMap: string
  platform?: Platform[]
  nameStrategy: NameStrategy
  maxDepth?: number
  include: string[]
  exclude: string[]
  layerCompression: LayerCompression
  /** Seconds a request body may make no progress before the request is abandoned and retried. */
  stallTimeout?: number
}

const progressEveryMs = 5_000
const defaultStallSeconds = 60
const stallEnv = 'FERRY_PUSH_STALL_TIMEOUT'

export function addPushCommand(program: Command, io: CliIo): void {
  const push = program.command('push').description('push content into a registry')
  push
    .command('images')
    .description(
      'push the images of a bundle (docker save, OCI layout, a tar of them; plain, gzip, zstd, xz or bzip2) into a registry namespace',
    )
    .requiredOption('--source <path>', 'bundle file, or an OCI layout / docker save folder')
    .requiredOption('--private-registry <host[:port][/namespace]>', 'destination registry and namespace (https unless written http://)')
    .option('--cacert <file>', 'PEM CA certificate(s) the registry is verified against, besides the public roots')
    .option('--username <user>', 'registry account')
    .option('--password <password>', 'its password')
    .option('--docker-config <file>', "a Docker config.json holding the registry's credentials")
    .option('--need-credential <bool>', 'false: push anonymously', parseBoolean, true)
    .option('--concurrency <n>', 'blob uploads in flight at once', parsePositive, 8)
    .option('--dry-run', 'read the bundle and print where each image would go, without pushing')
    .option('--json', 'NDJSON events on stdout instead of text')
    .option('--keep-going', 'push the other images after one failed (exit status 2)')
    .option('--digest-map <file>', 'where to write the source reference → pushed digest map', 'digest-map.json')
    .option('--platform <os/arch,...>', 'push only these platforms of multi-arch images (the index is rewritten)', parsePlatforms)
    .option('--name-strategy <strategy>', 'keep-path, flatten (a-b-foo) or basename (foo)', parseStrategy, 'keep-path')
    .option('--max-depth <n>', 'at most n path components under the namespace (leading ones joined with -)', parsePositive)
    .option('--include <glob>', 'only images whose name matches (* within a path component, ** across); repeatable', collect, [])
    .option('--exclude <glob>', 'leave out images whose name matches; repeatable', collect, [])
    .option(
      '--stall-timeout <seconds>',
      `a request whose body (upload or download) moves no byte for this long is cut and retried (default ${defaultStallSeconds}, or $${stallEnv})`,
      parseSeconds,
    )
    .option(
      '--layer-compression <kind>',
      "legacy docker saves' plain layers: none (pushed as they are), gzip or zstd (compressed the same way every run)",
      parseLayerCompression,
      'none',
    )
    .action(async (options: PushImagesOptions) => {
      growOldGenerationInLargeSteps(process.execArgv, oldGenerationRoom.push)
      io.exit(await pushImages(options, io))
    })
}

/** Runs the push and returns the exit status. */
export async function pushImages(options: PushImagesOptions, io: CliIo): Promise<number> {
  const started = Date.now()
  let destination: Destination
  let client: RegistryClient | undefined
  try {
    destination = parseDestination(options.privateRegistry)
    if (!options.dryRun) client = await destinationClient(options, destination, stallSeconds(options, io) * 1000, io)
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n`)
    return 1
  }
  const emit = (event: Record<string, unknown>): void => {
    if (options.json) io.stdout.write(`${JSON.stringify(event)}\n`)
  }
  try {
    const sink = client && new RegistrySink(client)
    if (sink) await sink.ping()
    // Ctrl-C stops the run cleanly (uploads cancelled, the spool removed); a second one at once.
    const interrupted = interruptedBySignals(io)
    const earlier = sink ? await earlierImages(options.digestMap, destination.host) : []
    const push = new BundlePush({
      signal: interrupted,
      earlier,
      ...(options.platform ? { platforms: options.platform } : {}),
      nameStrategy: options.nameStrategy,
      ...(options.maxDepth !== undefined ? { maxDepth: options.maxDepth } : {}),
      include: options.include,
      exclude: options.exclude,
      layerCompression: options.layerCompression,
      source: options.source,
      namespace: destination.namespace,
      concurrency: options.concurrency,
      keepGoing: options.keepGoing === true,
      ...(sink ? { sink } : {}),
      onEvent: (event) => {
        // Drawn from the push's images on a terminal; too frequent for lines or NDJSON.
        if (event.type === 'image.progress') return
        if (event.type === 'read.done') progress.imagesTotal = event.images
        if (event.type === 'image.done' || event.type === 'image.failed') progress.imagesDone++
        // Lines printed above the progress block, which is drawn again below them.
        const prints =
          event.type === 'read.done' || event.type === 'read.again' || event.type === 'image.done' || event.type === 'image.failed'
        if (prints) progress.clear()
        onEvent(event, destination, options, io, emit)
        if (prints) progress.resume()
      },
    })
    const progress = new PushProgress(io, push.stats, await fileSize(options.source), push.images)
    // With --json, a progress event every few seconds instead of the text.
    const timer = options.json
      ? setInterval(() => emit({ type: 'progress', ...push.stats, seconds: (Date.now() - started) / 1000 }), progressEveryMs)
      : undefined
    if (!options.json) progress.start()
    let report: PushReport
    try {
      report = await push.run()
    } finally {
      clearInterval(timer)
      progress.stop()
    }
    return await finish(report, destination, options, io, emit, (Date.now() - started) / 1000)
  } catch (err) {
    io.stderr.write(`ferry: ${(err as Error).message}\n`)
    return 1
  } finally {
    await client?.close()
  }
}

function onEvent(
  event: PushEvent,
  destination: Destination,
  options: PushImagesOptions,
  io: CliIo,
  emit: (e: Record<string, unknown>) => void,
): void {
  const full = 'destination' in event && event.destination !== '' ? `${destination.host}/${event.destination}` : undefined
  emit({ ...event, ...(full !== undefined ? { destination: full } : {}) })
  if (options.json) return
  if (event.type === 'read.done') io.stderr.write(`read the bundle: ${event.images} image(s)\n`)
  if (event.type === 'read.again') io.stderr.write(`reading the bundle again for ${event.blobs} blob(s) whose upload failed\n`)
  if (event.type === 'image.done') {
    io.stdout.write(`${event.unchanged ? 'unchanged' : 'pushed'}  ${event.source ?? '(no name)'} → ${full}@${event.digest}\n`)
  }
  if (event.type === 'image.failed') io.stdout.write(`FAILED  ${event.source ?? '(no name)'} → ${full ?? '?'}: ${event.error}\n`)
}

async function finish(
  report: PushReport,
  destination: Destination,
  options: PushImagesOptions,
  io: CliIo,
  emit: (e: Record<string, unknown>) => void,
  seconds: number,
): Promise<number> {
  const landed = report.images.filter((i) => i.status === 'pushed' || i.status === 'unchanged')
  const failed = report.images.filter((i) => i.status === 'failed' || i.status === 'skipped')
  const withHost = (image: ImageResult): string => (image.destination === '' ? '' : `${destination.host}/${image.destination}`)
  if (options.dryRun && !options.json && report.fatal === undefined) io.stdout.write(formatTable(report.images, withHost))
  if (!options.dryRun && landed.length > 0) {
    await writeDigestMap(options.digestMap, landed, withHost)
  }
  const summary = {
    type: 'summary',
    images: report.images.length,
    pushed: report.images.filter((i) => i.status === 'pushed').length,
    unchanged: report.images.filter((i) => i.status === 'unchanged').length,
    failed: failed.length,
    blobsPushed: report.stats.blobsPushed,
    blobsSkipped: report.stats.blobsSkipped,
    blobsMounted: report.stats.blobsMounted,
    bytesPushed: report.stats.bytesPushed,
    seconds: Math.round(seconds * 1000) / 1000,
    spoolPeakBytes: report.stats.spoolPeak,
    excluded: report.stats.imagesExcluded,
    ...(report.staging !== undefined ? { staging: report.staging } : {}),
    ...(report.fatal !== undefined ? { error: report.fatal } : {}),
    failures: failed.map((i) => ({ source: i.source ?? null, destination: withHost(i), error: i.error ?? 'failed' })),
    ...(options.dryRun
      ? {
          dryRun: true,
          plan: report.images.map((i) => ({
            source: i.source ?? null,
            destination: withHost(i),
            digest: i.digest ?? null,
            error: i.error ?? null,
          })),
        }
      : {}),
  }
  emit(summary)
  if (!options.json)
    io.stderr.write(
      formatReport(
        report,
        failed,
        withHost,
        seconds,
        options.dryRun === true,
        landed.length > 0 && !options.dryRun ? options.digestMap : undefined,
      ),
    )
  if (report.fatal !== undefined) {
    io.stderr.write(`ferry: ${report.fatal}\n`)
    return 1
  }
  if (failed.length === 0) return 0
  return landed.length > 0 ? 2 : 1
}

/**
 * The images a previous run wrote to the digest map (repository and digest on this registry), so
 * a rerun finds their blobs; a missing or unreadable map is no error, only a slower rerun.
 */
async function earlierImages(path: string, host: string): Promise<Array<{ repository: string; digest: Digest }>> {
  let map: unknown
  try {
    map = JSON.parse(await readFile(resolve(path), 'utf8'))
  } catch {
    return []
  }
  if (typeof map !== 'object' || map === null) return []
  const images: Array<{ repository: string; digest: Digest }> = []
  for (const entry of Object.values(map as Record<string, unknown>)) {
    const { destination, digest } = (entry ?? {}) as { destination?: unknown; digest?: unknown }
    if (typeof destination !== 'string' || typeof digest !== 'string' || !destination.startsWith(`${host}/`)) continue
    const parsed = tryParseDigest(digest)
    const repository = destination
      .slice(host.length + 1)
      .replace(/@.*$/, '')
      .replace(/:[^/]*$/, '')
    if (parsed !== undefined && isRepositoryName(repository)) images.push({ repository, digest: parsed })
  }
  return images
}

/** The bundle file's size, for the progress bar; undefined for a folder. */
async function fileSize(path: string): Promise<number | undefined> {
  try {
    const stats = await stat(path)
    return stats.isFile() ? stats.size : undefined
  } catch {
    return undefined
  }
}

async function writeDigestMap(path: string, landed: ImageResult[], withHost: (image: ImageResult) => string): Promise<void> {
  // Entries of earlier runs (other bundles) stay: the map is also what lets a rerun skip their blobs.
  let map: Record<string, { destination: string; digest: string }> = {}
  try {
    const previous = JSON.parse(await readFile(resolve(path), 'utf8')) as unknown
    if (typeof previous === 'object' && previous !== null && !Array.isArray(previous)) map = previous as typeof map
  } catch {
    // none yet, or not ours to keep
  }
  for (const image of landed) map[image.source ?? withHost(image)] = { destination: withHost(image), digest: image.digest ?? '' }
  const target = resolve(path)
  await writeFile(`${target}.tmp`, `${JSON.stringify(map, null, 2)}\n`)
  await rename(`${target}.tmp`, target)
}

function parsePlatforms(value: string): Platform[] {
  const platforms = value.split(',').map((item) => parsePlatform(item))
  if (platforms.length === 0 || platforms.some((p) => p === undefined)) throw new InvalidArgumentError('expected os/arch[/variant],...')
  return platforms as Platform[]
}

function parseStrategy(value: string): NameStrategy {
  if (!(nameStrategies as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${nameStrategies.join(', ')}`)
  return value as NameStrategy
}

function stallSeconds(options: PushImagesOptions, io: CliIo): number {
  if (options.stallTimeout !== undefined) return options.stallTimeout
  const fromEnv = io.env[stallEnv]
  if (fromEnv === undefined || fromEnv === '') return defaultStallSeconds
  try {
    return parseSeconds(fromEnv)
  } catch {
    throw new Error(`${stallEnv}="${fromEnv}": expected a number of seconds`)
  }
}

function parseSeconds(value: string): number {
  const seconds = Number(value.trim().replace(/s$/, ''))
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) throw new InvalidArgumentError('expected seconds, more than 0')
  return seconds
}

function parseLayerCompression(value: string): LayerCompression {
  if (!(layerCompressions as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected ${layerCompressions.join(', ')}`)
  return value as LayerCompression
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value]
}

function parseBoolean(value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true
  if (/^(false|0|no)$/i.test(value)) return false
  throw new InvalidArgumentError('expected true or false')
}

function parsePositive(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('expected a whole number from 1 to 256')
  return n
}
