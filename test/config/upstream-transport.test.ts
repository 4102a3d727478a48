// Config of upstream transports: tls files paired, proxy URLs checked without echoing them, and
// HTTPS_PROXY / HTTP_PROXY / NO_PROXY as defaults below the file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { toRawConfig } from '../../src/config/schema.js'
import { proxyDefaultsFromEnv, redactProxyPasswords } from '../../src/cli/proxy-env.js'
import { loadConfig } from '../../src/config/load.js'

const dir = await mkdtemp(join(tmpdir(), 'ferry-upstream-transport-config-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

async function configFile(lines: string[]): Promise<string> {
  const file = join(dir, `ferry-${Math.random().toString(36).slice(2)}.yaml`)
  await writeFile(file, [...lines, ''].join('\n'))
  return file
}

const upstream = (extra: string[]): Promise<string> =>
  configFile([
    'mirror:',
    '  upstreams:',
    '    - name: private.example',
    '      url: https://registry.example',
    ...extra.map((l) => `      ${l}`),
  ])

t.test('tls and proxy keys resolve per upstream', async (t) => {
  const file = await upstream([
    'tls:',
    '  caPath: /etc/ferry/ca.crt',
    '  certPath: /etc/ferry/client.crt',
    '  keyPath: /etc/ferry/client.key',
    'proxy: proxy.corp:3128',
  ])
  const config = await loadConfig({ file })
  const u = config.mirror.upstreams[0]!
  t.same(u.tls, {
    caPath: '/etc/ferry/ca.crt',
    certPath: '/etc/ferry/client.crt',
    keyPath: '/etc/ferry/client.key',
    insecureSkipVerify: false,
  })
  t.same(u.proxy, { kind: 'url', url: 'http://proxy.corp:3128' }, 'a bare host:port is http://')
  const none = await loadConfig({ file: await upstream(['proxy: none']) })
  t.same(none.mirror.upstreams[0]!.proxy, { kind: 'direct' })
  const unset = await loadConfig({ file: await upstream([]) })
  t.same(unset.mirror.upstreams[0]!.proxy, { kind: 'default' })
  t.same(unset.mirror.upstreams[0]!.tls.caPath, undefined)
})

t.test('a client certificate without its key (and the reverse) is an error naming the key', async (t) => {
  await t.rejects(loadConfig({ file: await upstream(['tls:', '  certPath: /c.crt']) }), {
    key: 'mirror.upstreams.0.tls.keyPath',
    message: /required when tls.certPath is set/,
  })
  t.match(await loadConfig({ file: await upstream(['tls:', '  keyPath: /c.key']) }).catch((e: Error) => e), {
    key: 'mirror.upstreams.0.tls.certPath',
  })
})

t.test('a bad proxy URL names the key, never the value', async (t) => {
  const err = await loadConfig({ file: await upstream(['proxy: "socks5://u:hunter2@proxy:1080"']) }).catch((e: Error) => e)
  t.match(err, { key: 'mirror.upstreams.0.proxy' })
  t.notMatch((err as Error).message, 'hunter2')
})

t.test('HTTPS_PROXY, HTTP_PROXY and NO_PROXY are defaults; upper case wins; the file wins over them', async (t) => {
  const env = {
    https_proxy: 'http://lower:3128',
    HTTPS_PROXY: 'http://upper:3128',
    http_proxy: 'http://plain:3128',
    no_proxy: '.corp,10.0.0.0/8',
  }
  const defaults = proxyDefaultsFromEnv(env)
  const fromEnv = await loadConfig({ env, defaults })
  t.same(fromEnv.mirror.proxy, { httpsProxy: 'http://upper:3128', httpProxy: 'http://plain:3128', noProxy: '.corp,10.0.0.0/8' })
  const file = await configFile(['mirror:', '  proxy:', '    httpsProxy: http://from-file:3128'])
  const overridden = await loadConfig({ file, env, defaults })
  t.equal(overridden.mirror.proxy?.httpsProxy, 'http://from-file:3128')
  t.equal(overridden.mirror.proxy?.noProxy, '.corp,10.0.0.0/8')
  t.same(proxyDefaultsFromEnv({ HTTPS_PROXY: '' }).data, {}, 'empty counts as unset')
})

t.test('a bad HTTPS_PROXY names the variable, not its value', async (t) => {
  const env = { HTTPS_PROXY: 'ftp://user:sekrit@proxy:21' }
  const err = await loadConfig({ env, defaults: proxyDefaultsFromEnv(env) }).catch((e: Error) => e)
  t.match(err, { key: 'mirror.proxy.httpsProxy', envVar: 'HTTPS_PROXY' })
  t.notMatch((err as Error).message, 'sekrit')
})

t.test('config print masks proxy passwords', async (t) => {
  const env = { HTTPS_PROXY: 'http://user:sekrit@proxy:3128' }
  const raw = redactProxyPasswords(toRawConfig(await loadConfig({ env, defaults: proxyDefaultsFromEnv(env) })))
  t.equal(raw.mirror.proxy.httpsProxy, 'http://user:***@proxy:3128')
})
