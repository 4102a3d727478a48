// `ferry serve`: load the config, start the server, shut down gracefully on SIGTERM/SIGINT.
import type { Command } from 'commander'
import type { DestinationStream, Logger } from 'pino'
import { closest } from '../config/errors.js'
import { envName, type IgnoredEnv } from '../config/env.js'
import { loadConfig } from '../config/load.js'
import type { Config, LogFormat } from '../config/schema.js'
import { StartupError } from '../core/startup-error.js'
import { watchFile } from '../reload/file-watch.js'
import { logOutput } from '../observability/log-output.js'
import { createLogger } from '../observability/logger.js'
import type { ServerHooks } from '../app/server.js'
import { growOldGenerationWhileWriting } from './old-generation.js'
import { addConfigFlags, configFile, flagOfSetting, overridesFrom, type ConfigFlags } from './config-flags.js'
import { proxyDefaultsFromEnv } from './proxy-env.js'
import { reportingConfigErrors, type CliIo } from './io.js'

export interface RunningServer {
  url: string
  /** Re-reads files that may change while running (TLS certificates); called on SIGHUP. */
  /** Re-reads rotated files; applies the live-reloadable parts of `next` (role bindings). */
  reload?(next?: Config): Promise<void>
  close(): Promise<void>
}

export type StartServer = (config: Config, logger: Logger, hooks?: ServerHooks) => Promise<RunningServer>

export interface ServeDeps {
  /** Replaces the real server in tests. */
  startServer?: StartServer
  /**
   * Lets V8's young generation grow again (the launcher held it while modules loaded, see
   * young-generation.ts): `serve` calls it once listening, with a bound per semi-space; every
   * other command before it runs, without one.
   */
  releaseYoungGeneration?: (boundMiB?: number) => void
}

// How far `serve` lets each of V8's two semi-spaces grow (V8's own limit: 16 MiB). Under load
// they grew to 16 MiB and stayed: 32 MiB of every peak and of RSS after it. 4 MiB took ~25 MiB
// off the TLS scenario's peaks and brought RSS after fills to ~1.05x its level before, at no
// cost visible in the manifest rate (bench/README.md, session 8).
const youngGenerationBoundMiB = 4

// Slack on top of http.shutdownTimeout before giving up on a close() that never settles, so a
// stuck shutdown ends in a non-zero exit instead of waiting for the orchestrator's SIGKILL.
const shutdownBackstopMs = 5_000

export function addServeCommand(program: Command, io: CliIo, deps: ServeDeps, version: string): void {
  const command = program.command('serve', { isDefault: true }).description('run the registry (the default command)')
  // As the default command, serve receives whatever word `ferry` did not recognise: report that
  // as an unknown command rather than commander's "too many arguments for 'serve'".
  addConfigFlags(command.allowExcessArguments()).action(
    reportingConfigErrors(io, async (flags: ConfigFlags, self: Command) => {
      const [word] = self.args
      if (word !== undefined) {
        const hint = closest(
          word,
          program.commands.map((c) => c.name()),
        )
        program.error(`error: unknown command '${word}'${hint === undefined ? '' : ` (did you mean '${hint}'?)`}`)
      }
      const file = configFile(flags, io)
      const options = { file, env: io.env, overrides: overridesFrom(flags), defaults: proxyDefaultsFromEnv(io.env) }
      // Loading comes before the logger exists (it sets the level): ignored variables are told
      // after, once; a reload reads the same environment.
      const ignored: IgnoredEnv[] = []
      const config = await loadConfig({ ...options, onIgnoredEnv: (i) => ignored.push(i) })
      const load = () => loadConfig(options)
      const logger = createLogger(config.log.level, logDestination(config.log.format, io))
      logIgnoredEnv(logger, ignored)
      await serve(config, logger, io, deps, version, { load, file })
    }),
  )
}

/** Log lines go to stdout: readable on a terminal (or with log.format pretty), JSON lines otherwise. */
function logDestination(format: LogFormat, io: CliIo): DestinationStream | undefined {
  if (io.logDestination !== undefined || io.logSink === undefined) return io.logDestination
  const terminal = io.logSink.isTTY === true
  const pretty = format === 'pretty' || (format === 'auto' && terminal)
  return logOutput(io.logSink, { pretty, colorize: pretty && terminal && !io.env.NO_COLOR })
}

/** How to read the config again (same file, environment and flags) on SIGHUP or a file change. */
interface ConfigSource {
  load(): Promise<Config>
  file: string | undefined
}

async function serve(config: Config, logger: Logger, io: CliIo, deps: ServeDeps, version: string, source: ConfigSource): Promise<void> {
  let server: RunningServer
  try {
    const startServer = deps.startServer ?? (await loadStartServer())
    const watches = growOldGenerationWhileWriting(process.execArgv)
    server = await startServer(config, logger, watches ? { uploadWatch: watches.uploads, importWatch: watches.imports } : {})
  } catch (err) {
    reportStartupFailure(err, logger, io)
    io.exit(1)
    return
  }
  logger.info({ url: server.url, version }, 'ferry started')
  deps.releaseYoungGeneration?.(youngGenerationBoundMiB)

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
        io.finish(0, (resources) => logger.warn({ resources }, 'still busy after shutdown, exiting anyway'))
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
  // A config file that no longer validates keeps the running policy and says why.
  const reload = async (why: string): Promise<void> => {
    if (closing) return
    logger.info({ trigger: why }, 'reloading')
    const next = await source.load().catch((err: unknown) => {
      logger.error(
        { file: source.file, error: err instanceof Error ? err.message : String(err) },
        'config reload failed, keeping the running configuration',
      )
      return undefined
    })
    await server.reload?.(next).catch((err: unknown) => logger.error({ err }, 'reload failed'))
  }
  io.onSignal('SIGHUP', () => void reload('SIGHUP'))
  const watch = source.file ? watchFile(source.file, () => void reload('config file changed')) : undefined
  if (watch) io.onSignal('SIGTERM', () => watch.close())
}

function logIgnoredEnv(logger: Logger, ignored: IgnoredEnv[]): void {
  const serviceLinks = ignored.filter((i) => i.kind === 'service-link').map((i) => i.variable)
  if (serviceLinks.length > 0) logger.debug({ variables: serviceLinks }, 'Kubernetes service-link variables ignored (not config keys)')
  for (const { variable, didYouMean } of ignored.filter((i) => i.kind === 'unknown')) {
    logger.warn({ variable, ...(didYouMean === undefined ? {} : { didYouMean }) }, 'unknown FERRY_* environment variable ignored')
  }
}

/**
 * One sentence on stderr, as for config errors: what failed, and for a setting the operator must
 * change, how to set it. Only an unexpected failure (a bug) is logged with its stack.
 */
function reportStartupFailure(err: unknown, logger: Logger, io: CliIo): void {
  if (err instanceof StartupError) {
    const flag = flagOfSetting[err.setting]
    const ways = [flag ?? `${err.setting} in the config file`, envName(err.setting.split('.'))]
    io.stderr.write(`ferry: ${err.message} (set ${ways.join(' or ')})\n`)
    return
  }
  logger.fatal({ err }, 'startup failed')
  io.stderr.write(`ferry: startup failed: ${err instanceof Error ? err.message : String(err)}\n`)
}

// Imported on demand so that `ferry config check` and `--version` do not load the whole server.
async function loadStartServer(): Promise<StartServer> {
  const { startServer } = await import('../app/server.js')
  return startServer
}
