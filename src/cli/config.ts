// `ferry config check <file>` and `ferry config print [file]`: validate a config file, or show
// the effective config (file < FERRY_* env < flags) as YAML with every default filled in.
import type { Command } from 'commander'
import { stringify } from 'yaml'
import type { IgnoredEnv } from '../config/env.js'
import { loadConfig } from '../config/load.js'
import { toRawConfig } from '../config/schema.js'
import { addConfigFlags, configFile, overridesFrom, type ConfigFlags } from './config-flags.js'
import { configErrorExitCode, reportingConfigErrors, type CliIo } from './io.js'
import { redactUrl } from '../coordination/redact-url.js'
import { proxyDefaultsFromEnv, redactProxyPasswords } from './proxy-env.js'

export function addConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('check or print the configuration')

  config
    .command('check')
    .description('validate a config file (FERRY_* environment overrides applied) and every file it names; exit status 2 if invalid')
    .argument('<file>', 'YAML config file')
    .action(
      reportingConfigErrors(io, async (file: string) => {
        const config = await loadConfig({ file, env: io.env, defaults: proxyDefaultsFromEnv(io.env), onIgnoredEnv: warnIgnoredEnv(io) })
        // Every file the config names gets the checks start-up makes (and reloads make), so a
        // rotation can be tried before SIGHUP: `ferry config check` then `kill -HUP`. Loaded on
        // demand: it reaches the server's modules.
        const { checkConfigFiles } = await import('./config-files.js')
        const { problems, warnings } = await checkConfigFiles(config)
        for (const warning of warnings) io.stderr.write(`ferry: warning: ${warning}\n`)
        if (problems.length > 0) {
          for (const problem of problems) io.stderr.write(`ferry: ${problem}\n`)
          io.exit(configErrorExitCode)
          return
        }
        io.stdout.write(`config ok: ${file}\n`)
      }),
    )

  const print = config
    .command('print')
    .description('print the effective config as YAML')
    .argument('[file]', 'YAML config file (default: --config or $FERRY_CONFIG)')
  addConfigFlags(print).action(
    reportingConfigErrors(io, async (file: string | undefined, flags: ConfigFlags) => {
      const effective = await loadConfig({
        file: file ?? configFile(flags, io),
        env: io.env,
        overrides: overridesFrom(flags),
        defaults: proxyDefaultsFromEnv(io.env),
        onIgnoredEnv: warnIgnoredEnv(io),
      })
      const raw = redactProxyPasswords(toRawConfig(effective))
      if (raw.storage.s3.secretAccessKey !== '') raw.storage.s3.secretAccessKey = '***'
      raw.coordination.redis.url = redactUrl(raw.coordination.redis.url)
      io.stdout.write(stringify(raw))
    }),
  )
}

// As serve logs them: a likely typo is a warning, Kubernetes service links pass silently.
function warnIgnoredEnv(io: CliIo): (ignored: IgnoredEnv) => void {
  return ({ variable, kind, didYouMean }) => {
    if (kind !== 'unknown') return
    const hint = didYouMean === undefined ? '' : ` (did you mean ${didYouMean}?)`
    io.stderr.write(`ferry: warning: unknown environment variable ${variable} ignored${hint}\n`)
  }
}
