// The process as the CLI sees it. Commands reach stdout, stderr, the environment, exit and signals
// only through CliIo, so tests run them in-process with fakes; processIo() is the real thing.
import type { DestinationStream } from 'pino'
import { ConfigError } from '../config/load.js'

export interface Output {
  write(chunk: string): unknown
}

export interface CliIo {
  stdout: Output
  stderr: Output
  env: Record<string, string | undefined>
  /** Ends the process. Commands that succeed without serving simply return instead. */
  exit(code: number): void
  /** Registers a listener for every delivery of `signal`. */
  onSignal(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): void
  /** Where `serve` writes its JSON logs; pino's default (fd 1) when absent. */
  logDestination?: DestinationStream
}

/** Exit status for an invalid config, distinct from commander's 1 for usage errors. */
export const configErrorExitCode = 2

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    exit: (code) => process.exit(code),
    onSignal: (signal, listener) => {
      process.on(signal, listener)
    },
  }
}

/** Wraps a command action so a ConfigError becomes one line on stderr and exit status 2. */
export function reportingConfigErrors<A extends unknown[]>(
  io: CliIo,
  action: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      io.stderr.write(`ferry: ${err.message}\n`)
      io.exit(configErrorExitCode)
    }
  }
}
