// `push images` and `serve` let V8 grow the old generation in large steps (cli/old-generation.ts):
// a push of a bundle, and a server receiving one, otherwise ran a full GC every few MB of
// surviving chunks; the room is bounded, so a larger heap does not grow fourfold. A node command
// line that sets the factor itself keeps its choice.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { growingPercent, growOldGenerationWhileReceiving, oldGenerationRoom } from '../../src/cli/old-generation.js'

const heap = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'old-generation.js')

/** What growOldGenerationInLargeSteps answers in a fresh node started with `nodeArgs`. */
function answer(nodeArgs: string[]): string {
  const script = `import(${JSON.stringify(heap)}).then((m) => console.log(m.growOldGenerationInLargeSteps(process.execArgv, m.oldGenerationRoom.serve)))`
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

t.test('the room past what survived: 48 MB for a push, 32 MB for a server; fourfold at most', async (t) => {
  const MB = 1024 * 1024
  const push = oldGenerationRoom.push
  t.equal(growingPercent(15 * MB, push), 300, 'a push of a few images: fourfold (60 MB)')
  t.equal(growingPercent(48 * MB, push), 100, 'twice what survived')
  t.equal(growingPercent(160 * MB, push), 30, 'a heap of many images gets 48 MB of room, not 480')
  t.equal(growingPercent(2048 * MB, push), 10, 'never below V8 smallest step')
  t.equal(growingPercent(22 * MB, oldGenerationRoom.serve), 145, 'a server: 32 MB past its ~22 MB')
})

t.test('serve: the room while pushed bytes arrive, V8 own factor again once none came for a while', async (t) => {
  const set: number[] = []
  const onBytesIn = growOldGenerationWhileReceiving([], oldGenerationRoom.serve, 150, (percent) => set.push(percent))
  t.ok(onBytesIn)
  onBytesIn!(65536)
  t.equal(set.length, 1, 'widened at the first bytes')
  t.ok(set[0]! > 0, `to ${set[0]}%`)
  // Bytes keep coming for longer than the idle time: no reset in between, and no second widening.
  for (let i = 0; i < 6; i++) {
    await sleep(50)
    onBytesIn!(65536)
  }
  t.same(set.slice(1), [], 'still widened while bytes arrive')
  await sleep(400)
  t.same(set.slice(1), [0], 'back to V8 own factor once idle')
  onBytesIn!(65536)
  t.equal(set.length, 3, 'and widened again by the next push')
  t.ok(set[2]! > 0)
  await sleep(400)
})

t.test('serve: a factor the node command line chose is kept', async (t) => {
  t.equal(growOldGenerationWhileReceiving(['--heap-growing-percent=50'], oldGenerationRoom.serve), undefined)
})
