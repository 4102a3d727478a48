// `ferry config check <file>` and `ferry config print [file]`: validate a config file, or show
// the effective config (file < FERRY_* env < flags) as YAML with every default filled in.
import type { Command } from 'commander'
import { stringify } from 'yaml'
import { loadConfig } from '../config/load.js'
import { toRawConfig } from '../config/resolve.js'
import { TlsFileError, loadCertificateSet } from '../tls/certificate-set.js'
import { addConfigFlags, configFile, overridesFrom, type ConfigFlags } from './config-flags.js'
import { configErrorExitCode, reportingConfigErrors, type CliIo } from './io.js'
import { proxyDefaultsFromEnv, redactProxyPasswords } from './proxy-env.js'

export function addConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('check or print the configuration')

  config
    .command('check')
    .description('validate a config file (FERRY_* environment overrides applied) and the TLS files it names; exit status 2 if invalid')
    .argument('<file>', 'YAML config file')
    .action(
      reportingConfigErrors(io, async (file: string) => {
        const config = await loadConfig({ file, env: io.env, defaults: proxyDefaultsFromEnv(io.env) })
        // The certificate files get the checks start-up and reloads make, so a rotation can be
        // tried before SIGHUP: `ferry config check` then `kill -HUP`.
        if (config.tls.serving !== undefined) {
          try {
            const set = await loadCertificateSet({ ...config.tls.serving, clientCa: config.tls.clientCa })
            for (const warning of set.warnings) io.stderr.write(`ferry: warning: ${warning}\n`)
          } catch (err) {
            if (!(err instanceof TlsFileError)) throw err
            io.stderr.write(`ferry: ${err.message}\n`)
            io.exit(configErrorExitCode)
            return
          }
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
      })
      const raw = redactProxyPasswords(toRawConfig(effective))
      if (raw.storage.s3.secretAccessKey !== '') raw.storage.s3.secretAccessKey = '***'
      io.stdout.write(stringify(raw))
    }),
  )
}
