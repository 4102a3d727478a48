// The progress of `ferry push images`: a bar redrawn in place on a terminal, plain lines off one.
import t from 'tap'
import { initialPushStats, type ImageProgress } from '../../src/bundle/results.js'
import { PushProgress } from '../../src/cli/push-progress.js'
import { fakeIo } from './fixtures/fake-io.js'

t.test('on a terminal: a bar over the bundle bytes read, with MB/s and ETA, then images done', async (t) => {
  const fake = fakeIo()
  fake.io.stderrIsTTY = true
  const s = initialPushStats()
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
  const progress = new PushProgress(fakeIo().io, { ...initialPushStats(), readBytes: 2_000_000 }, undefined)
  t.match(progress.line(1), /^reading 2\.0 MB · 2\.0 MB\/s/)
})

function image(name: string, state: ImageProgress['state'], bytesDone: number, bytesTotal: number): ImageProgress {
  return { name, state, bytesDone, bytesTotal }
}

t.test('on a terminal, while pushing: an overall bar over the bytes in place, then a line per image', async (t) => {
  const fake = fakeIo()
  fake.io.stderrIsTTY = true
  fake.io.stderrColumns = () => 200
  const s = { ...initialPushStats(), phase: 'pushing' as const, bytesPushed: 3_000_000 }
  const images = [image('gcr.io/x/a:1', 'pushed', 4_000_000, 4_000_000), image('gcr.io/x/b:2', 'pushing', 2_000_000, 8_000_000)]
  const progress = new PushProgress(fake.io, s, 100_000_000, images)
  const frame = progress.frame(1)
  t.equal(frame.length, 3, 'the overall line and one per image')
  t.match(frame[0], /^\[#{12}-{12}\] 50% images 1\/2 · 6\.0\/12\.0 MB in place · 3\.0 MB uploaded · blobs /)
  t.match(frame[1], /^ {2}pushed +gcr\.io\/x\/a:1 +4\.0\/4\.0 MB 100%$/)
  t.match(frame[2], /^ {2}pushing +gcr\.io\/x\/b:2 +2\.0\/8\.0 MB 25%$/)

  progress.draw()
  t.equal(fake.stderr(), frame.join('\n'), 'the first draw writes the block as it is')
  images[1]!.bytesDone = 8_000_000
  images[1]!.state = 'pushed'
  progress.draw()
  const second = fake.stderr().slice(frame.join('\n').length)
  t.ok(second.startsWith('\r\x1b[2A\x1b[J'), 'a redraw first moves up over the block and erases it')
  t.match(second, /pushed +gcr\.io\/x\/b:2 +8\.0\/8\.0 MB 100%/)
  progress.clear()
  t.ok(fake.stderr().endsWith('\r\x1b[2A\x1b[J'), 'clear erases the whole block')
})

t.test('many images: those being pushed first, the rest summed up; lines never wider than the terminal', async (t) => {
  const fake = fakeIo()
  fake.io.stderrIsTTY = true
  fake.io.stderrColumns = () => 40
  const images = Array.from({ length: 12 }, (_, i) =>
    image(`registry.example/very/long/path/image-${i}:1.0`, i < 3 ? 'pushed' : i >= 10 ? 'pushing' : 'waiting', 0, 1_000_000),
  )
  const progress = new PushProgress(fake.io, { ...initialPushStats(), phase: 'pushing' }, undefined, images)
  const frame = progress.frame(1)
  t.equal(frame.length, 10, 'the overall line, 8 image lines and a summing-up line')
  t.match(frame.slice(1, 9).join('\n'), /image-10:1\.0/, 'images being pushed are among those shown')
  t.match(frame.slice(1, 9).join('\n'), /image-11:1\.0/)
  t.match(frame[9], /… and 4 more \(3 finished, 1 waiting\)/)
  progress.draw()
  for (const line of fake.stderr().split('\n')) t.ok(line.length < 40, `drawn within 40 columns: ${JSON.stringify(line)}`)
})

t.test('start() draws at once on a terminal, and nothing off one', async (t) => {
  const tty = fakeIo()
  tty.io.stderrIsTTY = true
  const progress = new PushProgress(tty.io, initialPushStats(), 10_000_000)
  progress.start()
  progress.stop()
  t.match(tty.stderr(), /^\[-{24}\] 0% 0\.0\/10\.0 MB/)
  const plain = fakeIo()
  const quiet = new PushProgress(plain.io, initialPushStats(), 10_000_000)
  quiet.start()
  quiet.stop()
  t.equal(plain.stderr(), '')
})
