// `ferry gc [--dry-run]`, `ferry scrub [--dry-run]` and `ferry storage du`: the storage lifecycle's
// jobs run once against the configured storage, from outside the server. Safe beside a running
// server: GC keeps blobs younger than maintenance.gc.grace (a push in progress) and scrub only
// moves content whose bytes are wrong. On a server, POST /ferry/v1/gc also sees its requests.
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { formatSize } from '../config/units.js'
import { configFile, type ConfigFlags } from './config-flags.js'
import { reportingConfigErrors, type CliIo } from './io.js'
import { proxyDefaultsFromEnv } from './proxy-env.js'

interface MaintenanceFlags extends Pick<ConfigFlags, 'config' | 'storage'> {
  dryRun?: boolean
}

function withStorageFlags(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML config file (default: $FERRY_CONFIG)')
    .option('--storage <path>', 'filesystem storage directory (storage.filesystem.path)')
}

async function load(flags: MaintenanceFlags, io: CliIo): Promise<Config> {
  return loadConfig({
    file: configFile(flags, io),
    env: io.env,
    overrides: flags.storage === undefined ? {} : { storage: { filesystem: { path: flags.storage } } },
    defaults: proxyDefaultsFromEnv(io.env),
  })
}

// Loaded on demand: they reach the server's storage modules.
async function storage(config: Config) {
  const [{ buildDriver }, { BlobActivity }, { FilesystemDriver }] = await Promise.all([
    import('../app/compose-app.js'),
    import('../storage/lifecycle/blob-activity.js'),
    import('../storage/driver/filesystem.js'),
  ])
  const driver = await buildDriver(config)
  return { driver, activity: new BlobActivity(), filesystem: driver instanceof FilesystemDriver ? driver : undefined }
}

const bytes = (n: number): string => `${n} bytes${n >= 1024 ? ` (${formatSize(n)})` : ''}`

export function addMaintenanceCommands(program: Command, io: CliIo): void {
  withStorageFlags(program.command('gc').description('delete blobs nothing references, orphaned uploads and temp files'))
    .option('--dry-run', 'list what would go, delete nothing')
    .action(
      reportingConfigErrors(io, async (flags: MaintenanceFlags) => {
        const config = await load(flags, io)
        const { driver, activity, filesystem } = await storage(config)
        const { collectGarbage } = await import('../storage/lifecycle/gc.js')
        const report = await collectGarbage(
          driver,
          activity,
          { dryRun: flags.dryRun === true, graceMs: config.maintenance.gc.grace, uploadMaxAge: config.storage.uploads.maxAge },
          filesystem ? { purgeTemp: (ms) => filesystem.purgeTemp(ms) } : {},
        )
        const verb = report.dryRun ? 'would delete' : 'deleted'
        for (const blob of report.blobs) io.stdout.write(`${verb} blob ${blob.digest} ${blob.size}\n`)
        for (const upload of report.uploads) io.stdout.write(`${verb} upload ${upload}\n`)
        io.stdout.write(`${verb} ${report.blobs.length} blobs, ${bytes(report.bytes)}; ${report.uploads.length} upload sessions\n`)
      }),
    )

  withStorageFlags(program.command('scrub').description('re-hash stored blobs and manifests; quarantine corrupt ones'))
    .option('--dry-run', 'report corrupt content, move nothing')
    .action(
      reportingConfigErrors(io, async (flags: MaintenanceFlags) => {
        const config = await load(flags, io)
        const { driver, activity } = await storage(config)
        const { scrub } = await import('../storage/lifecycle/scrub.js')
        const report = await scrub(driver, activity, { bytesPerSecond: config.maintenance.scrub.rate, dryRun: flags.dryRun === true })
        for (const found of report.corrupt) {
          const fate = found.kind === 'pushed' ? 'LOST (pushed: push it again)' : 'fetched again on its next pull'
          io.stdout.write(`corrupt ${found.digest} (${found.kind}, hashes to ${found.actual}): ${fate}\n`)
        }
        io.stdout.write(`checked ${report.checked} objects, ${bytes(report.bytes)}; ${report.corrupt.length} corrupt\n`)
        if (report.corrupt.some((c) => c.kind === 'pushed')) io.exit(1)
      }),
    )

  const storageCommand = program.command('storage').description('storage usage')
  withStorageFlags(storageCommand.command('du').description('bytes stored by namespace and kind (pushed, cached per upstream)')).action(
    reportingConfigErrors(io, async (flags: MaintenanceFlags) => {
      const config = await load(flags, io)
      const { driver } = await storage(config)
      const [{ takeInventory }, { measureUsage }] = await Promise.all([
        import('../storage/lifecycle/inventory.js'),
        import('../storage/lifecycle/usage.js'),
      ])
      const usage = measureUsage(await takeInventory(driver))
      const rows = [...usage.byNamespace].sort(([a], [b]) => a.localeCompare(b))
      io.stdout.write(`${'NAMESPACE'.padEnd(40)} ${'KIND'.padEnd(8)} BYTES\n`)
      for (const [namespace, { kind, bytes: n }] of rows) io.stdout.write(`${namespace.padEnd(40)} ${kind.padEnd(8)} ${n}\n`)
      io.stdout.write(`pushed ${usage.pushedBytes}\n`)
      for (const [upstream, n] of usage.cachedByUpstream) io.stdout.write(`cached ${upstream} ${n}\n`)
      io.stdout.write(`cached total ${usage.cachedBytes}\nunreferenced ${usage.unreferencedBytes}\n`)
    }),
  )
}
