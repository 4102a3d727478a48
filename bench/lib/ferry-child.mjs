// Bench launcher for the COMPILED Ferry (dist/, from `npm run build`): the same as bin/ferry.js,
// plus two things. BENCH_FERRY_DIST=<folder> runs another build's dist/ (e.g. a snapshot of
// another commit, to compare before and after a change). And the harness holds our stdin open:
// when that pipe closes (the harness died without stopping us, even by SIGKILL) we exit at once,
// so no registry is left behind.
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const dist = process.env.BENCH_FERRY_DIST
const main = dist ? pathToFileURL(join(dist, 'cli', 'main.js')).href : new URL('../../dist/cli/main.js', import.meta.url).href
const { runCli } = await import(main)

if (process.env.BENCH_EXIT_WITH_PARENT === '1') {
  const die = () => process.kill(process.pid, 'SIGKILL')
  process.stdin.on('end', die)
  process.stdin.on('error', die)
  process.stdin.resume()
}

await runCli(process.argv)
