// Running external tools (skopeo, umoci) from tests: PATH lookup for skip decisions, and an exec
// wrapper whose errors carry the command line and the tool's stderr.
import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** The tools among `names` that are not executable anywhere on PATH. */
export function missingTools(...names: string[]): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '')
  return names.filter((name) => !dirs.some((dir) => isExecutable(join(dir, name))))
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

export interface RunResult {
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  cwd?: string
  timeoutMs?: number
}

/** Runs a tool to completion; rejects with its command line, exit status and output on failure. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      [...args],
      {
        env: options.env ?? process.env,
        cwd: options.cwd,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => {
        if (err) {
          const status = err.killed ? `killed (timeout ${options.timeoutMs ?? 120_000} ms?)` : `exit ${String(err.code)}`
          reject(new Error(`${command} ${args.join(' ')}: ${status}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`))
          return
        }
        resolve({ stdout, stderr })
      },
    )
  })
}
