// pino options shared by the server and the CLI. Redaction is on the logger, not at call sites,
// so a credential that reaches a log line by accident (a request's headers, an upstream's config
// object) is censored anyway.
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

export const redactedPaths = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'headers.authorization',
  '*.password',
  '*.token',
  '*.secret',
  '*.secretAccessKey',
  '*.privateKey',
  '*.private_key',
  '*.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.refreshToken',
] as const

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    // Replaces pino's default {pid, hostname}: the orchestrator labels the instance already.
    base: { name: 'ferry' },
    timestamp: isoTimeByMillisecond(),
    redact: { paths: [...redactedPaths], censor: '[redacted]' },
  }
}

/**
 * pino's `isoTime`, formatted once per millisecond: at thousands of access lines a second most
 * lines share their millisecond, and `toISOString()` was ~3 % of a warm manifest GET's CPU (#18).
 */
export function isoTimeByMillisecond(): () => string {
  let ms = -1
  let text = ''
  return () => {
    const now = Date.now()
    if (now !== ms) {
      ms = now
      text = `,"time":"${new Date(now).toISOString()}"`
    }
    return text
  }
}

/** A logger writing JSON lines to `destination`, or to stdout when none is given. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return destination === undefined ? pino(loggerOptions(level)) : pino(loggerOptions(level), destination)
}
