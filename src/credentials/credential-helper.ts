// Runs a Docker credential helper (`docker-credential-<name> get`, the docker-credential-helpers
// protocol): the server URL on stdin, `{"ServerURL","Username","Secret"}` on stdout, or an exit
// status with "credentials not found" meaning there are none. Its output is never logged.
import { spawn } from 'node:child_process'
import type { Credentials } from '../client/credentials.js'

export interface CredentialHelperOptions {
  /** Default 10 s; the helper is killed after it. */
  timeoutMs?: number
}

const maxOutputBytes = 1024 * 1024
const notFound = /credentials not found/i

/** The helper's credentials for `serverUrl`, or undefined when it has none. */
export function runCredentialHelper(
  helper: string,
  serverUrl: string,
  options: CredentialHelperOptions = {},
): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`
  const timeoutMs = options.timeoutMs ?? 10_000
  return new Promise((resolve, reject) => {
    const child = spawn(program, ['get'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const stdout: Buffer[] = []
    let size = 0
    let settled = false
    const finish = (err: Error | undefined, value?: Credentials): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(value)
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      finish(new Error(`${program} did not answer within ${timeoutMs} ms`))
    }, timeoutMs)
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > maxOutputBytes) {
        child.kill('SIGKILL')
        finish(new Error(`${program} wrote more than ${maxOutputBytes} bytes`))
        return
      }
      stdout.push(chunk)
    })
    // stderr is read and discarded: helpers may echo what they were asked about.
    child.stderr.resume()
    child.on('error', (err) => {
      const code = (err as { code?: unknown }).code
      finish(new Error(`${program} could not be run (${typeof code === 'string' ? code : 'error'}; is it on PATH?)`))
    })
    child.stdin.on('error', () => {
      // A helper that exits without reading stdin: its exit status tells the story.
    })
    child.stdin.end(serverUrl)
    child.on('close', (code) => {
      const output = Buffer.concat(stdout).toString('utf8')
      if (code !== 0) {
        if (notFound.test(output)) finish(undefined, undefined)
        else finish(new Error(`${program} get failed (exit ${code ?? 'signal'})`))
        return
      }
      try {
        finish(undefined, parseHelperOutput(output, program))
      } catch (err) {
        finish(err as Error)
      }
    })
  })
}

function parseHelperOutput(output: string, program: string): Credentials | undefined {
  let document: unknown
  try {
    document = JSON.parse(output)
  } catch {
    throw new Error(`${program} get did not answer JSON`)
  }
  const { Username: username, Secret: secret } = (document ?? {}) as Record<string, unknown>
  if (typeof secret !== 'string' || secret === '') return undefined
  if (typeof username !== 'string') throw new Error(`${program} get answered without a Username`)
  // Username `<token>` marks an identity token, which the authenticator handles as such.
  return { username, password: secret }
}
