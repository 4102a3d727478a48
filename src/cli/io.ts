// The process as the CLI sees it. Commands reach stdout, stderr, the environment, exit and signals
// only through CliIo, so tests run them in-process with fakes; processIo() is the real thing.
import type { DestinationStream } from 'pino'
import type { LogSink } from '../observability/log-output.js'
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
  /** Ends the process with `code` when its work is done; see processIo(). Only `serve` uses it. */
  finish(code: number, onLinger: (resources: string[]) => void): void
  /** Where `serve` writes its log lines as they are (tests); else formatted onto `logSink`. */
  logDestination?: DestinationStream
  /** process.stdout: `serve` logs to it as JSON lines, or readable ones when it is a terminal. */
  logSink?: LogSink & { isTTY?: boolean }
}

// Time the event loop gets to run dry after a clean shutdown before the process exits anyway.
// Closed handles end it in milliseconds; this is for what is still held (a stalled stdout).
const lingerMs = 2_000

/** Exit status for an invalid config, distinct from commander's 1 for usage errors. */
export const configErrorExitCode = 2

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    exit: (code) => process.exit(code),
    // Exiting by running dry rather than by process.exit() lets queued log lines reach a slow
    // reader, and a handle left open shows up as a warning instead of going unnoticed.
    finish: (code, onLinger) => {
      process.exitCode = code
      setTimeout(() => {
        onLinger(process.getActiveResourcesInfo())
        process.exit(code)
      }, lingerMs).unref()
    },
    logSink: process.stdout,
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
