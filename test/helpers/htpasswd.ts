// htpasswd files for tests, written by the real `htpasswd -B` (apache2-utils) when it is on PATH,
// as operators write them; bcryptjs stands in where it is not, so tests that only need accounts
// still run.
import { rename, writeFile } from 'node:fs/promises'
import bcrypt from 'bcryptjs'
import { missingTools, run } from './tools.js'

export const htpasswdMissing = missingTools('htpasswd').length > 0

/** One `name:$2y$…` line, from `htpasswd -nbB` (cost 5, its default). */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  if (htpasswdMissing) return `${user}:${await bcrypt.hash(password, 5)}`
  const { stdout } = await run('htpasswd', ['-nbB', user, password])
  return stdout.trim()
}

/** Writes an htpasswd file of `users` (name → password) atomically, as a careful operator would. */
export async function writeHtpasswd(path: string, users: Record<string, string>): Promise<void> {
  const lines = await Promise.all(Object.entries(users).map(([user, password]) => htpasswdLine(user, password)))
  await writeFile(`${path}.tmp`, `${lines.join('\n')}\n`)
  await rename(`${path}.tmp`, path)
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}
