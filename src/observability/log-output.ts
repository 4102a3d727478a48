// Where `ferry serve` writes its log lines: stdout, as JSON lines or, on a terminal, as readable
// ones. Written through Node's own stdout stream, never pino's exit-time synchronous flush: that
// flush blocks on a stalled pipe and retries a broken one forever, so a log shipper that stopped
// reading (or exited, as `ferry serve | head -1` does) could keep Ferry from ever exiting. Here a
// reader that falls behind costs at most `maxQueuedBytes` of memory, lines past that are dropped
// and counted, and a broken pipe ends logging rather than the process.
import type { DestinationStream } from 'pino'
import { createRequire } from 'node:module'

/** What the output needs of process.stdout. */
export interface LogSink {
  write(chunk: string): boolean
  readonly writableLength: number
  on(event: 'error', listener: (err: Error) => void): unknown
  on(event: 'drain', listener: () => void): unknown
}

export interface LogOutputOptions {
  /** Readable lines instead of JSON. */
  pretty: boolean
  /** Colours in readable lines (a terminal that is not NO_COLOR). */
  colorize?: boolean
  /** Bytes queued for a slow reader before lines are dropped. Default 8 MiB. */
  maxQueuedBytes?: number
}

export function logOutput(sink: LogSink, options: LogOutputOptions): DestinationStream {
  const maxQueuedBytes = options.maxQueuedBytes ?? 8 * 1024 * 1024
  const format = options.pretty
    ? loadPrettyFactory()({ colorize: options.colorize ?? false, translateTime: 'SYS:HH:MM:ss.l', ignore: 'name', singleLine: true })
    : undefined
  let broken = false
  let dropped = 0
  sink.on('error', () => {
    broken = true
  })
  sink.on('drain', () => {
    if (dropped === 0 || broken) return
    const note = `{"level":40,"time":"${new Date().toISOString()}","name":"ferry","dropped":${dropped},"msg":"log lines dropped: stdout was not read fast enough"}\n`
    dropped = 0
    sink.write(format ? format(note) : note)
  })
  // Lines are written once per turn of the event loop, joined: a write per line cost a tenth of
  // a warm manifest GET's CPU when stdout is a file (SyncWriteStream makes a Buffer and a
  // writeSync of each). The turn's lines still leave before the loop can run dry at shutdown.
  let batch = ''
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    const lines = batch
    batch = ''
    if (!broken && lines !== '') sink.write(lines)
  }
  return {
    write(line: string) {
      if (broken) return
      if (sink.writableLength + batch.length > maxQueuedBytes) {
        dropped++
        return
      }
      batch += format ? format(line) : line
      if (!scheduled) {
        scheduled = true
        setImmediate(flush)
      }
    },
  }
}

// Loaded only when pretty lines are asked for: pino-pretty and its dependencies cost ~10 MiB of
// RSS that a server logging JSON (a pipe, a file, a log shipper) never needs.
function loadPrettyFactory(): typeof import('pino-pretty').prettyFactory {
  return (createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty')).prettyFactory
}
