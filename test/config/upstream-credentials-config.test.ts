// Config of upstream credentials: the keys resolve, round-trip, and errors name the key.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { decodeConfig, toRawConfig } from '../../src/config/schema.js'

const dir = await mkdtemp(join(tmpdir(), 'ferry-upstream-credentials-config-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
let n = 0
async function configFile(upstreamLines: string[], mirrorLines: string[] = []): Promise<string> {
  const file = join(dir, `ferry-${n++}.yaml`)
  const lines = [
    'mirror:',
    ...mirrorLines.map((l) => `  ${l}`),
    '  upstreams:',
    '    - name: gcr.io',
    '      url: https://gcr.io',
    ...upstreamLines.map((l) => `      ${l}`),
  ]
  await writeFile(file, `${lines.join('\n')}\n`)
  return file
}

t.test('keys resolve ("" is unset) and round-trip', async (t) => {
  const config = await loadConfig({
    file: await configFile(['gcrKeyPath: /k.json', 'gcrKeyFlow: oauth2'], ['pullCredentialConfigPath: /c.json']),
  })
  t.match(config.mirror.upstreams[0], { gcrKeyPath: '/k.json', gcrKeyFlow: 'oauth2', pullCredentialConfigPath: undefined })
  t.equal(config.mirror.pullCredentialConfigPath, '/c.json')
  t.same(decodeConfig(toRawConfig(config)), config)
  const unset = await loadConfig({ file: await configFile([]) })
  t.match(unset.mirror.upstreams[0], { gcrKeyPath: undefined, gcrKeyFlow: 'jsonKey', pullCredentialConfigPath: undefined })
  t.equal(unset.mirror.pullCredentialConfigPath, undefined)
})

t.test('errors name the key', async (t) => {
  await t.rejects(loadConfig({ file: await configFile(['gcrKeyFlow: jwt']) }), {
    key: 'mirror.upstreams.0.gcrKeyFlow',
    message: /one of jsonKey, oauth2/,
  })
  await t.rejects(loadConfig({ file: await configFile(['gcrKeyFlow: oauth2']) }), {
    key: 'mirror.upstreams.0.gcrKeyFlow',
    message: /needs gcrKeyPath/,
  })
  await t.rejects(loadConfig({ file: await configFile(['gcrKeyPath: /k.json', 'pullCredentialConfigPath: /c.json']) }), {
    key: 'mirror.upstreams.0.pullCredentialConfigPath',
    message: /either gcrKeyPath or pullCredentialConfigPath/,
  })
  await t.rejects(loadConfig({ file: await configFile([], ['pullCredentialConfigPath: 3']) }), {
    key: 'mirror.pullCredentialConfigPath',
    message: /Docker config.json/,
  })
})
