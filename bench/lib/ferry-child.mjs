// Bench launcher for the COMPILED Ferry (dist/, from `npm run build`): the same as bin/ferry.js,
// plus two things. BENCH_FERRY_DIST=<folder> runs another build's dist/ (e.g. a snapshot of
// another commit, to compare before and after a change). And the harness holds our stdin open:
// when that pipe closes (the harness died without stopping us, even by SIGKILL) we exit at once,
// so no registry is left behind.
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'

const dist = process.env.BENCH_FERRY_DIST || fileURLToPath(new URL('../../dist', import.meta.url))
// As bin/ferry.js: V8's young generation held small while the modules load (a build from before
// that change has no such module and runs as it did).
const youngGeneration = join(dist, 'cli', 'young-generation.js')
const releaseYoungGeneration = existsSync(youngGeneration)
  ? (await import(pathToFileURL(youngGeneration).href)).holdYoungGeneration(process.execArgv)
  : undefined
const { runCli } = await import(pathToFileURL(join(dist, 'cli', 'main.js')).href)

if (process.env.BENCH_EXIT_WITH_PARENT === '1') {
  const die = () => process.kill(process.pid, 'SIGKILL')
  process.stdin.on('end', die)
  process.stdin.on('error', die)
  process.stdin.resume()
}

await runCli(process.argv, undefined, { releaseYoungGeneration })
