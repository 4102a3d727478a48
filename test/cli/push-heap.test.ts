// `push images` lets V8 grow the old generation in large steps (cli/push-heap.ts): a push of a
// compressed bundle otherwise ran a full GC every few MB of surviving chunks. A node command line
// that sets the factor itself keeps its choice.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'

const heap = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'push-heap.js')

/** What growOldGenerationInLargeSteps answers in a fresh node started with `nodeArgs`. */
function answer(nodeArgs: string[]): string {
  const script = `import(${JSON.stringify(heap)}).then((m) => console.log(m.growOldGenerationInLargeSteps(process.execArgv)))`
  const result = spawnSync(process.execPath, [...nodeArgs, '-e', script], { encoding: 'utf8' })
  t.equal(result.status, 0, result.stderr)
  return result.stdout.trim()
}

t.test('the factor is set when the node command line leaves it to V8', async (t) => {
  t.equal(answer([]), 'true')
})

t.test('a factor the node command line chose is kept', async (t) => {
  t.equal(answer(['--heap-growing-percent=50']), 'false')
  t.equal(answer(['--heap_growing_percent=50']), 'false')
})
