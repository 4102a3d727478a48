// `ferry serve`: load the config, start the server, shut down gracefully on SIGTERM/SIGINT.
import type { Command } from 'commander'
import type { Logger } from 'pino'
import { closest } from '../config/errors.js'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { createLogger } from '../observability/logger.js'
import { addConfigFlags, configFile, overridesFrom, type ConfigFlags } from './config-flags.js'
import { reportingConfigErrors, type CliIo } from './io.js'

export interface RunningServer {
  url: string
  /** Re-reads files that may change while running (TLS certificates); called on SIGHUP. */
  reload?(): Promise<void>
  close(): Promise<void>
}

export type StartServer = (config: Config, logger: Logger) => Promise<RunningServer>

export interface ServeDeps {
  /** Replaces the real server in tests. */
  startServer?: StartServer
}

// Slack on top of http.shutdownTimeout before giving up on a close() that never settles, so a
// stuck shutdown ends in a non-zero exit instead of waiting for the orchestrator's SIGKILL.
const shutdownBackstopMs = 5_000

export function addServeCommand(program: Command, io: CliIo, deps: ServeDeps, version: string): void {
  const command = program
    .command('serve', { isDefault: true })
    .description('run the registry (the default command)')
  // As the default command, serve receives whatever word `ferry` did not recognise: report that
  // as an unknown command rather than commander's "too many arguments for 'serve'".
  addConfigFlags(command.allowExcessArguments()).action(
    reportingConfigErrors(io, async (flags: ConfigFlags, self: Command) => {
      const [word] = self.args
      if (word !== undefined) {
        const hint = closest(word, program.commands.map((c) => c.name()))
        program.error(`error: unknown command '${word}'${hint === undefined ? '' : ` (did you mean '${hint}'?)`}`)
      }
      const config = await loadConfig({ file: configFile(flags, io), env: io.env, overrides: overridesFrom(flags) })
      const logger = createLogger(config.log.level, io.logDestination)
      await serve(config, logger, io, deps, version)
    }),
  )
}

async function serve(config: Config, logger: Logger, io: CliIo, deps: ServeDeps, version: string): Promise<void> {
  let server: RunningServer
  try {
    const startServer = deps.startServer ?? (await loadStartServer())
    server = await startServer(config, logger)
  } catch (err) {
    logger.fatal({ err }, 'startup failed')
    io.exit(1)
    return
  }
  logger.info({ url: server.url, version }, 'ferry started')

  let closing = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      logger.warn({ signal }, 'second signal, exiting without waiting')
      io.exit(1)
      return
    }
    closing = true
    logger.info({ signal }, 'shutting down')
    const backstop = setTimeout(() => {
      logger.error({ ms: config.http.shutdownTimeout + shutdownBackstopMs }, 'shutdown did not finish')
      io.exit(1)
    }, config.http.shutdownTimeout + shutdownBackstopMs)
    backstop.unref()
    server.close().then(
      () => {
        clearTimeout(backstop)
        logger.info('stopped')
        io.exit(0)
      },
      (err: unknown) => {
        clearTimeout(backstop)
        logger.error({ err }, 'shutdown failed')
        io.exit(1)
      },
    )
  }
  io.onSignal('SIGTERM', onSignal)
  io.onSignal('SIGINT', onSignal)
  // SIGHUP would otherwise end the process: here it means "re-read your files", as for nginx.
  io.onSignal('SIGHUP', (signal) => {
    if (closing) return
    logger.info({ signal }, 'reloading')
    server.reload?.().catch((err: unknown) => logger.error({ err }, 'reload failed'))
  })
}

// Imported on demand so that `ferry config check` and `--version` do not load the whole server.
async function loadStartServer(): Promise<StartServer> {
  const { startServer } = await import('../server.js')
  return startServer
}
