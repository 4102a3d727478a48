// The progress of `ferry push images`: a bar redrawn in place on a terminal, plain lines off one.
import t from 'tap'
import type { PushStats } from '../../src/bundle/results.js'
import { PushProgress } from '../../src/cli/push-progress.js'
import { fakeIo } from './fixtures/fake-io.js'

function stats(): PushStats {
  return {
    readBytes: 0,
    blobsPushed: 0,
    blobsSkipped: 0,
    blobsMounted: 0,
    bytesPushed: 0,
    spoolPeak: 0,
    imagesExcluded: 0,
    phase: 'reading',
  }
}

t.test('on a terminal: a bar over the bundle bytes read, with MB/s and ETA, then images done', async (t) => {
  const fake = fakeIo()
  fake.io.stderrIsTTY = true
  const s = stats()
  const progress = new PushProgress(fake.io, s, 100_000_000)
  s.readBytes = 50_000_000
  t.match(progress.line(10), /^\[#{12}-{12}\] 50% 50\.0\/100\.0 MB · 5\.0 MB\/s · ETA 10s · blobs 0 pushed/)
  s.readBytes = 100_000_000
  t.match(progress.line(20), /^\[#{24}\] 100% .* ETA 0s/)
  s.phase = 'pushing'
  progress.imagesTotal = 3
  progress.imagesDone = 1
  s.bytesPushed = 60_000_000
  t.match(progress.line(21), 'pushing images 1/3 · 60.0 MB uploaded')
  progress.clear()
  t.equal(fake.stderr(), '', 'nothing to clear before the first draw')
})

t.test('without a size (a folder): no bar, only what was read', async (t) => {
  const progress = new PushProgress(fakeIo().io, { ...stats(), readBytes: 2_000_000 }, undefined)
  t.match(progress.line(1), /^reading 2\.0 MB · 2\.0 MB\/s/)
})
