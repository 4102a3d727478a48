// A copy of this checkout in a temp folder, as a fresh clone would be (no dist/, no data/), with
// node_modules linked rather than installed: tests that build, pack or `npm start` work there
// without touching the dist/ other tests load.
import { cp, symlink } from 'node:fs/promises'
import { join, relative } from 'node:path'

export const projectRoot = join(import.meta.dirname, '..', '..')

const notCopied = ['node_modules', 'dist', '.git', '.tap', 'data', 'bench/results', '.bench-tmp']

/** Copies the checkout into `into` (which must not exist) and returns it. */
export async function copyCheckout(into: string): Promise<string> {
  await cp(projectRoot, into, { recursive: true, filter: (src) => !notCopied.includes(relative(projectRoot, src)) })
  await symlink(join(projectRoot, 'node_modules'), join(into, 'node_modules'))
  return into
}

/** The environment for a nested npm or ferry: without the npm_* settings of an `npm test` running us, nor FERRY_*. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(npm_|FERRY_)/i.test(k)) env[k] = v
  }
  return { ...env, ...extra }
}
