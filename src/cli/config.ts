// `ferry config check <file>` and `ferry config print [file]`: validate a config file, or show
// the effective config (file < FERRY_* env < flags) as YAML with every default filled in.
import type { Command } from 'commander'
import { stringify } from 'yaml'
import { loadConfig } from '../config/load.js'
import { toRawConfig } from '../config/resolve.js'
import { addConfigFlags, configFile, overridesFrom, type ConfigFlags } from './config-flags.js'
import { reportingConfigErrors, type CliIo } from './io.js'

export function addConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('check or print the configuration')

  config
    .command('check')
    .description('validate a config file (FERRY_* environment overrides applied); exit status 2 if invalid')
    .argument('<file>', 'YAML config file')
    .action(
      reportingConfigErrors(io, async (file: string) => {
        await loadConfig({ file, env: io.env })
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
      })
      io.stdout.write(stringify(toRawConfig(effective)))
    }),
  )
}
