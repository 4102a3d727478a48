// `push images` and `serve` let V8 grow the old generation in large steps (cli/old-generation.ts):
// a push of a bundle, and a server receiving one, otherwise ran a full GC every few MB of
// surviving chunks; the room is bounded, so a larger heap does not grow fourfold. A node command
// line that sets the factor itself keeps its choice.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { eventually } from '../helpers/eventually.js'
import {
  growingPercent,
  growOldGenerationWhileWriting,
  importGrowingPercent,
  oldGenerationRoom,
  uploadGrowingPercent,
} from '../../src/cli/old-generation.js'

const heap = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'old-generation.js')

/** What growOldGenerationInLargeSteps answers in a fresh node started with `nodeArgs`. */
function answer(nodeArgs: string[]): string {
  const script = `import(${JSON.stringify(heap)}).then((m) => console.log(m.growOldGenerationInLargeSteps(process.execArgv, m.oldGenerationRoom.push)))`
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

t.test('a push gets 48 MB past what survived, fourfold at most', async (t) => {
  const MB = 1024 * 1024
  const push = oldGenerationRoom.push
  t.equal(growingPercent(15 * MB, push), 300, 'a push of a few images: fourfold (60 MB)')
  t.equal(growingPercent(48 * MB, push), 100, 'twice what survived')
  t.equal(growingPercent(160 * MB, push), 30, 'a heap of many images gets 48 MB of room, not 480')
  t.equal(growingPercent(2048 * MB, push), 10, 'never below V8 smallest step')
})

t.test('serve: the room once two or more uploads run at once, V8 own factor again once none has for a while', async (t) => {
  const set: number[] = []
  const watch = growOldGenerationWhileWriting([], { idleMs: 150, setPercent: (percent) => set.push(percent) })!.uploads
  watch.begin()
  t.same(set, [], 'one upload alone: V8 own factor')
  watch.begin()
  t.equal(set.length, 1, 'widened when a second one starts')
  t.equal(set[0], uploadGrowingPercent)
  // One push's blobs follow each other, at times one at a time.
  for (let i = 0; i < 4; i++) {
    watch.end()
    await sleep(50)
    watch.begin()
  }
  watch.end()
  await sleep(300)
  t.same(set.slice(1), [], 'still widened while one upload goes on')
  watch.end()
  await eventually(() => set.length === 2, { message: 'the factor reset' })
  t.same(set.slice(1), [0], 'back to V8 own factor once none ran for the idle time')
  watch.begin()
  watch.begin()
  t.equal(set.length, 3, 'and widened again by the next push')
  watch.end()
  watch.end()
  await eventually(() => set.length === 4, { message: 'the factor reset' })
  t.same(set.slice(3), [0])
})

t.test('serve: more room while a bulk import runs, kept until nothing has run for a while', async (t) => {
  const set: number[] = []
  const { uploads, imports } = growOldGenerationWhileWriting([], { idleMs: 150, setPercent: (percent) => set.push(percent) })!
  t.ok(importGrowingPercent > uploadGrowingPercent)
  imports.begin()
  t.same(set, [importGrowingPercent], 'an import alone gets it at once')
  uploads.begin()
  uploads.begin()
  t.same(set, [importGrowingPercent], 'uploads beside it ask for less: unchanged')
  imports.end()
  await sleep(300)
  t.same(set, [importGrowingPercent], 'kept while the uploads go on')
  uploads.end()
  uploads.end()
  await eventually(() => set.length === 2, { message: 'the factor reset' })
  t.same(set, [importGrowingPercent, 0], 'V8 own factor once nothing ran for the idle time')

  uploads.begin()
  uploads.begin()
  imports.begin()
  t.same(set.slice(2), [uploadGrowingPercent, importGrowingPercent], 'raised from the uploads room when an import starts')
  imports.end()
  uploads.end()
  uploads.end()
  await eventually(() => set.length === 5, { message: 'the factor reset' })
  t.same(set.slice(4), [0])
})

t.test('serve: a factor the node command line chose is kept', async (t) => {
  t.equal(growOldGenerationWhileWriting(['--heap-growing-percent=50']), undefined)
})
