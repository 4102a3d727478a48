import t from 'tap'
import { parseRangeHeader, parseUploadContentRange, uploadRangeHeader } from '../../src/core/range.js'

t.test('blob Range headers', async (t) => {
  const size = 2048
  t.same(parseRangeHeader(undefined, size), { kind: 'none' })
  t.same(parseRangeHeader('bytes=500-1499', size), { kind: 'satisfiable', range: { start: 500, end: 1499 } })
  t.same(parseRangeHeader('bytes=500-', size), { kind: 'satisfiable', range: { start: 500, end: 2047 } })
  t.same(parseRangeHeader('bytes=-500', size), { kind: 'satisfiable', range: { start: 1548, end: 2047 } })
  t.same(parseRangeHeader('bytes=-5000', size), { kind: 'satisfiable', range: { start: 0, end: 2047 } })
  t.same(parseRangeHeader('bytes=2000-5000', size), { kind: 'satisfiable', range: { start: 2000, end: 2047 } })
  t.same(parseRangeHeader('bytes=500-0', size), { kind: 'unsatisfiable' })
  t.same(parseRangeHeader('bytes=5000-10000', size), { kind: 'unsatisfiable' })
  t.same(parseRangeHeader('bytes=-0', size), { kind: 'unsatisfiable' })
  t.same(parseRangeHeader('bytes=0-0', 0), { kind: 'unsatisfiable' })
  // Multiple ranges and other units are ignored: the whole blob is served.
  t.same(parseRangeHeader('bytes=0-1,5-6', size), { kind: 'none' })
  t.same(parseRangeHeader('items=0-1', size), { kind: 'none' })
  t.same(parseRangeHeader('bytes=-', size), { kind: 'none' })
})

t.test('upload Content-Range', async (t) => {
  t.same(parseUploadContentRange('0-21'), { start: 0, end: 21 })
  t.same(parseUploadContentRange('bytes 22-41/42'), { start: 22, end: 41 })
  t.same(parseUploadContentRange('bytes 22-41/*'), { start: 22, end: 41 })
  t.equal(parseUploadContentRange('41-22'), undefined)
  t.equal(parseUploadContentRange('a-b'), undefined)
  t.equal(parseUploadContentRange('-5'), undefined)
  t.equal(uploadRangeHeader(0), '0-0')
  t.equal(uploadRangeHeader(42), '0-41')
})
