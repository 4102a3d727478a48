// fastify gives every request a pino child logger (for its reqId binding). Making one costs a few
// microseconds, ~4 % of a warm manifest GET's CPU, yet most requests never log through it: the
// access line has a logger of its own (request-observer.ts). This factory makes the child on
// first use instead.
import type { FastifyBaseLogger } from 'fastify'

type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = Parameters<FastifyBaseLogger['child']>[1]

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export function lazyChildLoggerFactory(logger: FastifyBaseLogger, bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
  let child: FastifyBaseLogger | undefined
  const real = (): FastifyBaseLogger => (child ??= logger.child(bindings, options))
  const method =
    (level: Level) =>
    (...args: unknown[]): void =>
      (real()[level] as (...a: unknown[]) => void)(...args)
  return {
    get level() {
      return child?.level ?? logger.level
    },
    set level(value: string) {
      real().level = value
    },
    fatal: method('fatal'),
    error: method('error'),
    warn: method('warn'),
    info: method('info'),
    debug: method('debug'),
    trace: method('trace'),
    silent: method('silent'),
    child: (moreBindings: Bindings, moreOptions?: ChildLoggerOptions) => real().child(moreBindings, moreOptions),
  } as FastifyBaseLogger
}
