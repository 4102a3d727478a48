// Calls back when any of a set of files may have changed, however it was replaced: written in
// place, renamed over (editors, `htpasswd` itself, cert-manager), or swapped behind a symlink
// (Kubernetes Secret volumes flip a `..data` link). A watch on a file would follow its old inode
// and see nothing, so the folder of each path is watched, and the folder its symlinks resolve to
// (re-resolved after every change: a swap moves it). Any event there leads to a stat of every
// path after a quiet time; only a changed (inode, size, mtime) of one of them calls back.
import { watch, type FSWatcher } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'

/** The config file's quiet time; reloadable file sets use ReloadableFiles' longer one. */
const defaultDebounceMs = 100

export interface FileWatch {
  /** Settles once the folders the symlinks resolve to are watched too (the paths' own at once). */
  readonly ready: Promise<void>
  close(): void
}

export interface WatchOptions {
  /** Quiet time after the last event before checking, so files written in pieces are read once. */
  debounceMs?: number
  /** Called when a folder cannot be watched (the caller logs it; an explicit reload still works). */
  onError?: (err: unknown, dir: string) => void
}

export function watchFile(path: string, onChange: () => void, options: WatchOptions = {}): FileWatch {
  return watchFiles([path], onChange, options)
}

export function watchFiles(paths: readonly string[], onChange: () => void, options: WatchOptions = {}): FileWatch {
  const debounceMs = options.debounceMs ?? defaultDebounceMs
  const watchers = new Map<string, FSWatcher>()
  let last: string | undefined
  let timer: NodeJS.Timeout | undefined
  let closed = false

  const schedule = (): void => {
    clearTimeout(timer)
    timer = setTimeout(() => void check(), debounceMs)
    timer.unref()
  }

  const watchDir = (dir: string): void => {
    if (closed || watchers.has(dir)) return
    try {
      const watcher = watch(dir, { persistent: false }, schedule)
      watcher.on('error', () => {
        // The folder went away (a replaced symlink target): the check re-resolves.
        watcher.close()
        if (watchers.get(dir) === watcher) watchers.delete(dir)
        schedule()
      })
      watchers.set(dir, watcher)
    } catch (err) {
      options.onError?.(err, dir)
    }
  }

  const ownDirs = new Set(paths.map((p) => dirname(resolve(p))))
  // Watches each symlink's target folder, and stops watching targets no longer in use.
  const follow = async (): Promise<void> => {
    const targets = await Promise.all(paths.map((p) => realpath(p).then(dirname, () => undefined)))
    const dirs = new Set([...ownDirs, ...targets.filter((d): d is string => d !== undefined)])
    for (const [dir, watcher] of watchers) {
      if (!dirs.has(dir)) {
        watcher.close()
        watchers.delete(dir)
      }
    }
    for (const dir of dirs) watchDir(dir)
  }

  const check = async (): Promise<void> => {
    await follow()
    const now = await signature(paths)
    if (closed || now === last) return
    last = now
    onChange()
  }

  for (const dir of ownDirs) watchDir(dir)
  const ready = Promise.all([
    follow(),
    signature(paths).then((s) => {
      last ??= s
    }),
  ]).then(() => undefined)

  return {
    ready,
    close() {
      closed = true
      clearTimeout(timer)
      for (const watcher of watchers.values()) watcher.close()
      watchers.clear()
    },
  }
}

async function signature(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    paths.map((path) =>
      stat(path).then(
        (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
        () => 'missing',
      ),
    ),
  )
  return parts.join('|')
}
