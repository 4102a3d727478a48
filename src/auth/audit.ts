// Audit lines: one structured log line per push, delete and login failure, marked `audit: true`
// so they can be routed apart from request logs. Never carries a secret: the callers pass names,
// addresses and reasons only.
import type { Logger } from 'pino'

export type AuditEvent =
  | { event: 'login-failed'; user: string | undefined; remote: string; via: 'basic' | 'token-password' | 'token-refresh'; reason: string }
  | { event: 'login-rate-limited'; user: string | undefined; remote: string; via: 'basic' | 'token-password' | 'token-refresh' }

export type Audit = (event: AuditEvent) => void

export function auditLogger(logger: Logger): Audit {
  return (event) => logger.warn({ audit: true, ...event }, event.event === 'login-failed' ? 'login failed' : 'login rate limited')
}
