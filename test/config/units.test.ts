import t from 'tap'
import { formatDuration, formatListen, formatSize, missingUnit, parseDuration, parseListen, parseSize } from '../../src/config/units.js'

t.test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('30s'), 30_000)
  t.equal(parseDuration('5m'), 300_000)
  t.equal(parseDuration('24h'), 86_400_000)
  t.equal(parseDuration('7d'), 604_800_000)
  t.equal(parseDuration('1h30m'), 5_400_000)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration(0), 0, '0 needs no unit')
  for (const bad of ['soon', '', '10', '10 s', '-5s', '5w', 250, 1.5, -1, true, null]) {
    t.equal(parseDuration(bad), undefined, `rejects ${JSON.stringify(bad)}`)
  }
  for (const ms of [0, 500, 30_000, 86_400_000, 172_800_000, 5_400_000]) {
    t.equal(parseDuration(formatDuration(ms)), ms, `round-trips ${ms}`)
  }
  t.equal(formatDuration(86_400_000), '24h')
  t.equal(formatDuration(172_800_000), '2d')
})

t.test('sizes', async (t) => {
  t.equal(parseSize('64MiB'), 64 * 1024 ** 2)
  t.equal(parseSize('1GiB'), 1024 ** 3)
  t.equal(parseSize('512KiB'), 512 * 1024)
  t.equal(parseSize('100MB'), 100_000_000)
  t.equal(parseSize('64mib'), 64 * 1024 ** 2, 'units ignore case')
  t.equal(parseSize('10 KiB'), 10 * 1024)
  t.equal(parseSize('1024B'), 1024)
  t.equal(parseSize(0), 0, '0 needs no unit')
  for (const bad of ['big', '64 MiBs', '-1MiB', '1PB', '1024', 4096, 1.5, -1, false]) {
    t.equal(parseSize(bad), undefined, `rejects ${JSON.stringify(bad)}`)
  }
  for (const bytes of [0, 1, 1024, 64 * 1024 ** 2, 100_000_000, 1234567]) {
    t.equal(parseSize(formatSize(bytes)), bytes, `round-trips ${bytes}`)
  }
})

t.test('a bare number where a unit is needed gets its fix', async (t) => {
  t.equal(missingUnit('duration', 75), '75 has no unit; write "75s" or "75ms"')
  t.equal(missingUnit('duration', '1.5'), '1.5 has no unit; write "1.5s" or "1.5ms"')
  t.equal(missingUnit('size', 100), '100 has no unit; write "100MiB" or "100B"')
  t.equal(missingUnit('size', 67108864), '67108864 has no unit; write "64MiB" (67108864 bytes) or "67108864B"')
  for (const fine of [0, '0', '75s', 'soon', -5, true, undefined])
    t.equal(missingUnit('duration', fine), undefined, `${JSON.stringify(fine)}`)
})

t.test('listen addresses', async (t) => {
  t.same(parseListen(':5000'), { host: '0.0.0.0', port: 5000 })
  t.same(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 })
  t.same(parseListen('localhost:0'), { host: 'localhost', port: 0 })
  t.same(parseListen('[::1]:5000'), { host: '::1', port: 5000 })
  t.same(parseListen('[::]:5000'), { host: '::', port: 5000 })
  t.same(parseListen('5000'), { host: '0.0.0.0', port: 5000 })
  t.same(parseListen(5000), { host: '0.0.0.0', port: 5000 })
  for (const bad of ['', ':', ':70000', '::1:5000', 'host', 'host:port', 'a b:1', '[::1]', 1.5, -1]) {
    t.equal(parseListen(bad), undefined, `rejects ${JSON.stringify(bad)}`)
  }
  t.equal(formatListen({ host: '::1', port: 5000 }), '[::1]:5000')
  t.equal(formatListen({ host: '0.0.0.0', port: 5000 }), ':5000')
  t.equal(formatListen({ host: 'localhost', port: 80 }), 'localhost:80')
})
