// The process as the CLI sees it. Commands reach stdout, stderr, the environment, exit and signals
// only through CliIo, so tests run them in-process with fakes; processIo() is the real thing.
import type { DestinationStream } from 'pino'
import type { LogSink } from '../observability/log-output.js'
import { ConfigError } from '../config/errors.js'

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
  /** Whether stderr is a terminal (progress bars redraw in place there). */
  stderrIsTTY?: boolean
  /** The terminal's width (it may change), undefined when unknown. */
  stderrColumns?: () => number | undefined
  /**
   * Asks for a line on the terminal (`hidden`: echoing nothing, for a password); absent when
   * stdin is no terminal. Resolves undefined when the user gave up (Ctrl-C, Ctrl-D).
   */
  ask?(prompt: string, hidden: boolean): Promise<string | undefined>
  /** process.stdout: `serve` logs to it as JSON lines, or readable ones when it is a terminal. */
  logSink?: LogSink & { isTTY?: boolean }
}

// Time the event loop gets to run dry after a clean shutdown before the process exits anyway.
// Closed handles end it in milliseconds; this is for what is still held (a stalled stdout).
const lingerMs = 2_000

/**
 * Ctrl-C (or SIGTERM) aborts the returned signal, so a long command stops cleanly (transfers
 * cancelled, temp files removed); a second one quits at once with 130.
 */
export function interruptedBySignals(io: CliIo): AbortSignal {
  const interrupt = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) return io.exit(130)
    io.stderr.write(`ferry: ${signal}: stopping (again to quit at once)\n`)
    interrupt.abort(new Error(`interrupted by ${signal}`))
  }
  io.onSignal('SIGINT', onSignal)
  io.onSignal('SIGTERM', onSignal)
  return interrupt.signal
}

/** Exit status for an invalid config, distinct from commander's 1 for usage errors. */
export const configErrorExitCode = 2

export function processIo(): CliIo {
  quietSdkNodeWarning(process.env)
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
    stderrIsTTY: process.stderr.isTTY === true,
    stderrColumns: () => process.stderr.columns,
    ...(process.stdin.isTTY === true ? { ask: (prompt: string, hidden: boolean) => ask(prompt, hidden) } : {}),
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

/** Reads a line from the terminal in raw mode, echoing it unless `hidden`. */
function ask(prompt: string, hidden: boolean): Promise<string | undefined> {
  const stdin = process.stdin
  process.stderr.write(prompt)
  return new Promise((resolve) => {
    let secret = ''
    const done = (value: string | undefined): void => {
      stdin.off('data', onData)
      stdin.setRawMode(false)
      stdin.pause()
      process.stderr.write('\n')
      resolve(value)
    }
    const onData = (chunk: Buffer): void => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return done(secret)
        if (char === '\u0003' || char === '\u0004') return done(undefined)
        if (char === '\u007f' || char === '\b') {
          if (!hidden && secret.length > 0) process.stderr.write('\b \b')
          secret = secret.slice(0, -1)
        } else {
          secret += char
          if (!hidden) process.stderr.write(char)
        }
      }
    }
    stdin.setRawMode(true)
    stdin.resume()
    stdin.on('data', onData)
  })
}

/**
 * On Node < 22 the AWS SDK warns, once per process, that its releases after January 2027 need
 * Node 22: news for whoever picks Ferry's Node version (its image, `engines`), which an operator
 * reading Ferry's output cannot act on, and which buried real warnings in CI logs. The SDK's own
 * switch turns it off (aws-sdk-js-v3#7983), unless the environment already sets it.
 */
export function quietSdkNodeWarning(env: Record<string, string | undefined>): void {
  env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
}
