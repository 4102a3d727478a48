// A start-up failure the operator fixes by changing one setting: a busy port, an unusable storage
// folder, a TLS file that cannot serve. `ferry serve` prints it as one sentence naming the setting
// and how to set it (flag, environment variable), with no stack trace.

export class StartupError extends Error {
  constructor(
    /** The config key to change, e.g. `listen`, `storage.filesystem.path`, `tls.key`. */
    readonly setting: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'StartupError'
  }
}

const errnoText: Record<string, string> = {
  EADDRINUSE: 'address in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a path component is not a directory',
  EEXIST: 'exists and is not a directory',
  ENOENT: 'no such file or directory',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'is a directory',
}

/** `address in use` for an EADDRINUSE error; the error's own message for anything else. */
export function describeSystemError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && errnoText[code] !== undefined) return errnoText[code]
  return err instanceof Error ? err.message : String(err)
}
