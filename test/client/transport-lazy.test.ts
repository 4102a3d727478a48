// A Transport loads undici (~6 MiB of RSS) only when its first request needs a dispatcher, not when
// it is built: a mirror builds one per upstream at start and may not ask any of them for a while (#18).
// Its own test file, so no other test has loaded undici into this process first.
import { createRequire } from 'node:module'
import t from 'tap'
import { Transport } from '../../src/client/transport.js'

const loadedUndici = (): boolean =>
  Object.keys(createRequire(import.meta.url).cache).some((file) => /[\\/]node_modules[\\/]undici[\\/]/.test(file))

t.test('building a transport does not load undici; its first dispatcher does', async (t) => {
  t.notOk(loadedUndici(), 'not loaded before')
  const transport = new Transport({ proxy: { kind: 'rules', httpsProxy: 'http://user:secret@127.0.0.1:3128', noProxy: 'localhost' } })
  t.notOk(loadedUndici(), 'not loaded by building a transport, proxies included')
  await transport.close()
  t.notOk(loadedUndici(), 'closing an unused transport loads nothing')

  const used = new Transport()
  const direct = used.dispatcherFor(new URL('http://127.0.0.1:1/v2/'))
  t.ok(loadedUndici(), 'loaded for the first request')
  t.equal(used.dispatcherFor(new URL('http://127.0.0.1:2/v2/')), direct, 'one agent, built once')
  await used.close()
})

t.test('a bad proxy URL still fails when the transport is built', async (t) => {
  t.throws(() => new Transport({ proxy: { kind: 'url', url: 'not a url' } }))
})
