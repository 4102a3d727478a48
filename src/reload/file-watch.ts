// Calls back when a file's content may have changed, however it was replaced: written in place,
// renamed over (editors, `htpasswd` itself), or swapped behind a symlink (Kubernetes Secret
// volumes flip a `..data` link). So the parent directory is watched, not the file's inode, and
// any event there leads to a stat of the path; only a changed (inode, size, mtime) calls back.
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { dirname } from 'node:path'

export interface FileWatch {
  close(): void
}

export interface WatchOptions {
  /** Quiet time after the last event before checking, so a file written in pieces is read once. */
  debounceMs?: number
  /** Called when the directory cannot be watched (the caller logs it; reload() still works). */
  onError?: (err: unknown) => void
}

export function watchFile(path: string, onChange: () => void, options: WatchOptions = {}): FileWatch {
  const debounceMs = options.debounceMs ?? 100
  let last: string | undefined
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const signature = async (): Promise<string> => {
    try {
      const s = await stat(path)
      return `${s.ino}:${s.size}:${s.mtimeMs}`
    } catch {
      return 'missing'
    }
  }
  void signature().then((s) => {
    last ??= s
  })
  const check = async (): Promise<void> => {
    const now = await signature()
    if (closed || now === last) return
    last = now
    onChange()
  }
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(path), { persistent: false }, () => {
      if (timer) clearTimeout(timer)
      timer = setTimeout(() => void check(), debounceMs)
      timer.unref()
    })
    watcher.on('error', (err) => options.onError?.(err))
  } catch (err) {
    options.onError?.(err)
  }
  return {
    close() {
      closed = true
      if (timer) clearTimeout(timer)
      watcher?.close()
    },
  }
}
