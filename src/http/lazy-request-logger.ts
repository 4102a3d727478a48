// fastify gives every request a pino child logger (for its reqId binding). Making one costs a few
// microseconds, ~4 % of a warm manifest GET's CPU, yet most requests never log through it: the
// access line has a logger of its own (request-observer.ts). This factory makes the child on
// first use instead. The stand-in is one small object whose methods live on its prototype: a
// closure per method per request cost ~1 % of a warm manifest GET by itself (#18).
import type { FastifyBaseLogger } from 'fastify'

type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = Parameters<FastifyBaseLogger['child']>[1]

type Method = (...args: unknown[]) => void

class LazyChildLogger {
  #child: FastifyBaseLogger | undefined

  constructor(
    readonly parent: FastifyBaseLogger,
    readonly bindings: Bindings,
    readonly options: ChildLoggerOptions | undefined,
  ) {}

  real(): FastifyBaseLogger {
    return (this.#child ??= this.parent.child(this.bindings, this.options))
  }

  get level(): string {
    return this.#child?.level ?? this.parent.level
  }

  set level(value: string) {
    this.real().level = value
  }

  fatal(...args: unknown[]): void {
    ;(this.real().fatal as Method)(...args)
  }

  error(...args: unknown[]): void {
    ;(this.real().error as Method)(...args)
  }

  warn(...args: unknown[]): void {
    ;(this.real().warn as Method)(...args)
  }

  info(...args: unknown[]): void {
    ;(this.real().info as Method)(...args)
  }

  debug(...args: unknown[]): void {
    ;(this.real().debug as Method)(...args)
  }

  trace(...args: unknown[]): void {
    ;(this.real().trace as Method)(...args)
  }

  silent(...args: unknown[]): void {
    ;(this.real().silent as Method)(...args)
  }

  child(moreBindings: Bindings, moreOptions?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(moreBindings, moreOptions)
  }
}

export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChildLogger(logger, bindings, options) as unknown as FastifyBaseLogger
}
