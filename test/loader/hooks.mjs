// Module hooks for TypeScript sources: `./x.js` resolves to `./x.ts` when only that exists (the
// NodeNext convention the sources follow), and a .ts file loads as an ES module transpiled by swc,
// with an inline source map for stack traces and coverage. Types are not checked here:
// `npm run typecheck` does that once for the whole tree.
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { transformSync } from '@swc/core'

const relative = /^(\.{1,2}\/|\/|file:)/

export async function resolve(specifier, context, nextResolve) {
  if (relative.test(specifier) && specifier.endsWith('.js') && context.parentURL?.startsWith('file:')) {
    const url = new URL(specifier.slice(0, -'.js'.length) + '.ts', context.parentURL)
    if (existsSync(url) && !existsSync(new URL(specifier, context.parentURL)))
      return { url: url.href, format: 'module', shortCircuit: true }
  }
  return nextResolve(specifier, context)
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context)
  const filename = fileURLToPath(url)
  const { code } = transformSync(await readFile(filename, 'utf8'), {
    filename,
    swcrc: false,
    sourceMaps: 'inline',
    jsc: {
      parser: { syntax: 'typescript', tsx: false, dynamicImport: true, importAssertions: true },
      target: 'es2022',
      keepClassNames: true,
    },
  })
  return { format: 'module', source: code, shortCircuit: true }
}
