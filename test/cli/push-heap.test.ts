// `push images` lets V8 grow the old generation in large steps (cli/push-heap.ts): a push of a
// compressed bundle otherwise ran a full GC every few MB of surviving chunks; the room it gets is
// bounded, so a larger heap does not grow fourfold. A node command line that sets the factor
// itself keeps its choice.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { growingPercent } from '../../src/cli/push-heap.js'

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

t.test('the room past what survived is 48 MB: fourfold for a small heap, less for a larger one', async (t) => {
  const MB = 1024 * 1024
  t.equal(growingPercent(15 * MB), 300, 'a push of a few images: fourfold (60 MB)')
  t.equal(growingPercent(48 * MB), 100, 'twice what survived')
  t.equal(growingPercent(160 * MB), 30, 'a heap of many images gets 48 MB of room, not 480')
  t.equal(growingPercent(2048 * MB), 10, 'never below V8 smallest step')
})
