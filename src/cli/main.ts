// Builds the `ferry` program. Everything process-bound arrives through CliIo, so tests drive the
// program in-process; bin/ferry.js calls runCli(process.argv).
import { Command, CommanderError } from 'commander'
import { packageVersion } from '../app/package-version.js'
import { addBundleCommand } from './bundle.js'
import { addConfigCommand } from './config.js'
import { addContainerdConfigCommand } from './containerd-config.js'
import { addExtractCommand } from './extract.js'
import { addHealthcheckCommand } from './healthcheck.js'
import { addPullCommand } from './pull.js'
import { addMaintenanceCommands } from './maintenance.js'
import { addPushCommand } from './push-images.js'
import { addRobotCommand } from './robot.js'
import { processIo, type CliIo } from './io.js'
import { addServeCommand, type ServeDeps } from './serve.js'

export type { CliIo } from './io.js'
export type CliDeps = ServeDeps

export function buildProgram(io: CliIo, deps: CliDeps = {}): Command {
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
  addServeCommand(program, io, deps, version)
  addConfigCommand(program, io)
  addRobotCommand(program, io)
  addPushCommand(program, io)
  addContainerdConfigCommand(program, io)
  addHealthcheckCommand(program, io)
  addBundleCommand(program, io)
  addPullCommand(program, io)
  addExtractCommand(program, io)
  addMaintenanceCommands(program, io)
  return program
}

/** Runs the CLI on a full argv (node, script, ...args). */
export async function runCli(argv: readonly string[], io: CliIo = processIo(), deps: CliDeps = {}): Promise<void> {
  try {
    await buildProgram(io, deps).parseAsync([...argv])
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
