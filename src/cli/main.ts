// Builds the `ferry` program. Everything process-bound arrives through CliIo, so tests drive the
// program in-process; bin/ferry.js calls runCli(process.argv).
import { Command, CommanderError } from 'commander'
import { packageVersion } from '../app/package-version.js'
import { processIo, type CliIo } from './io.js'
import type { ServeDeps } from './serve.js'

export type { CliIo } from './io.js'
export type CliDeps = ServeDeps

type AddCommands = (program: Command, io: CliIo, deps: CliDeps, version: string) => void

/**
 * Each command's module, by the names it adds, in the order of `ferry --help`. Loaded only when
 * its command runs: loading them all took ~0.35 s of CPU, paid by every `ferry healthcheck` (a
 * container's health probe) and every `push images`.
 */
const commandModules: ReadonlyArray<{ names: readonly string[]; load: () => Promise<AddCommands> }> = [
  { names: ['serve'], load: async () => (await import('./serve.js')).addServeCommand },
  { names: ['config'], load: async () => (await import('./config.js')).addConfigCommand },
  { names: ['robot'], load: async () => (await import('./robot.js')).addRobotCommand },
  { names: ['push'], load: async () => (await import('./push-images.js')).addPushCommand },
  { names: ['containerd-config'], load: async () => (await import('./containerd-config.js')).addContainerdConfigCommand },
  { names: ['healthcheck'], load: async () => (await import('./healthcheck.js')).addHealthcheckCommand },
  { names: ['bundle'], load: async () => (await import('./bundle.js')).addBundleCommand },
  { names: ['pull'], load: async () => (await import('./pull.js')).addPullCommand },
  { names: ['extract'], load: async () => (await import('./extract.js')).addExtractCommand },
  { names: ['gc', 'scrub', 'storage'], load: async () => (await import('./maintenance.js')).addMaintenanceCommands },
]

/**
 * The `ferry` program with the command `args` name (its first word), none for `--version`, or
 * every command when they name none (`--help`, serve's flags, a typo).
 */
export async function buildProgram(io: CliIo, deps: CliDeps = {}, args: readonly string[] = []): Promise<Command> {
  const version = packageVersion()
  // Configured before subcommands are added: they inherit output and exit handling.
  const program = new Command('ferry')
    .description('Ferry: a self-hosted OCI container registry mirror')
    .version(version, '-V, --version', 'print the version')
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
    })
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
  // serve lets the young generation grow once it listens; the other commands run at full speed.
  program.hook('preAction', (_, action) => {
    if (action.name() !== 'serve') deps.releaseYoungGeneration?.()
  })
  const named = commandModules.find((module) => module.names.includes(args[0] ?? ''))
  const versionOnly = args.length === 1 && (args[0] === '-V' || args[0] === '--version')
  for (const module of versionOnly ? [] : named === undefined ? commandModules : [named]) (await module.load())(program, io, deps, version)
  return program
}

/** Runs the CLI on a full argv (node, script, ...args). */
export async function runCli(argv: readonly string[], io: CliIo = processIo(), deps: CliDeps = {}): Promise<void> {
  try {
    await (await buildProgram(io, deps, argv.slice(2))).parseAsync([...argv])
  } catch (err) {
    // Help and --version also arrive here, as CommanderErrors with exit code 0.
    if (err instanceof CommanderError) {
      if (err.exitCode !== 0) io.exit(err.exitCode)
      return
    }
    io.stderr.write(`ferry: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    io.exit(1)
  }
}
