// Kubernetes injects service-link variables into every pod started after a Service exists; a
// Service named `ferry` makes them FERRY_*. `ferry serve` must start and serve with them, and
// still make a mistyped FERRY_* variable visible.
import t from 'tap'
import { startFerryProcess } from '../helpers/ferry-process.js'

// What the kubelet sets for `Service ferry` with `ports: [{ name: http, port: 5000 }]`.
const serviceLinks = {
  FERRY_SERVICE_HOST: '10.96.0.12',
  FERRY_SERVICE_PORT: '5000',
  FERRY_SERVICE_PORT_HTTP: '5000',
  FERRY_PORT: 'tcp://10.96.0.12:5000',
  FERRY_PORT_5000_TCP: 'tcp://10.96.0.12:5000',
  FERRY_PORT_5000_TCP_PROTO: 'tcp',
  FERRY_PORT_5000_TCP_PORT: '5000',
  FERRY_PORT_5000_TCP_ADDR: '10.96.0.12',
}

interface LogLine {
  level?: number
  msg?: string
  variable?: string
  variables?: string[]
  didYouMean?: string
}

function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
}

t.test('ferry serve with service-link variables and a typo starts, serves /v2/ and warns about the typo only', async (t) => {
  const storage = t.testdir({})
  const ferry = await startFerryProcess(['serve', '--listen', '127.0.0.1:0', '--storage', storage, '--log-level', 'debug'], {
    env: { ...serviceLinks, FERRY_LISTN: ':6000' },
  })
  t.teardown(() => ferry.stop())
  const res = await fetch(`${ferry.url}/v2/`)
  t.equal(res.status, 200, '/v2/ answers')
  await res.body?.cancel()

  const lines = logLines(ferry.logs())
  const warnings = lines.filter((l) => l.level === 40 && /variable/.test(l.msg ?? ''))
  t.same(
    warnings.map((l) => ({ variable: l.variable, didYouMean: l.didYouMean })),
    [{ variable: 'FERRY_LISTN', didYouMean: 'FERRY_LISTEN' }],
    'one warning, for the typo, with the suggestion',
  )
  const debug = lines.find((l) => l.level === 20 && l.variables !== undefined)
  t.same(debug?.variables, Object.keys(serviceLinks).sort(), 'the service links are noted at debug level')
  t.notOk(ferry.url.endsWith(':6000'), 'the mistyped variable changed nothing')
})
