// `ferry config check` also checks the certificate files the config names, as start-up would,
// so a rotation can be tried before SIGHUP.
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/main.js'
import { fakeIo } from '../cli/fixtures/fake-io.js'
import { issueServerCert, makeCa, pkiUnavailable } from '../helpers/pki.js'

const why = pkiUnavailable()
if (why !== undefined) {
  t.plan(0, `config check TLS tests skipped: ${why}`)
} else {
  t.test('config check with tls files', async (t) => {
    const dir = t.testdir({})
    const ca = await makeCa(join(dir, 'ca'))
    const a = await issueServerCert(ca, { cn: 'a', name: 'a' })
    const b = await issueServerCert(ca, { cn: 'b', name: 'b' })
    const future = await issueServerCert(ca, { cn: 'future', name: 'future', startDaysAgo: -1 })
    const check = async (cert: string, key: string) => {
      const file = join(dir, 'ferry.yaml')
      await writeFile(file, `tls:\n  cert: ${cert}\n  key: ${key}\n`)
      const fake = fakeIo()
      await runCli(['node', 'ferry', 'config', 'check', file], fake.io)
      return { file, fake }
    }

    const good = await check(a.certPath, a.keyPath)
    t.equal(good.fake.stdout(), `config ok: ${good.file}\n`)
    t.same(good.fake.exits, [])

    const mismatched = await check(a.certPath, b.keyPath)
    t.equal(
      mismatched.fake.stderr(),
      `ferry: tls.key (${b.keyPath}): does not match the certificate in tls.cert (${a.certPath}, serial ${a.serialNumber})\n`,
    )
    t.same(mismatched.fake.exits, [2])
    t.equal(mismatched.fake.stdout(), '')

    const missing = await check(join(dir, 'nope.crt'), a.keyPath)
    t.equal(missing.fake.stderr(), `ferry: tls.cert (${join(dir, 'nope.crt')}): no such file\n`)
    t.same(missing.fake.exits, [2])

    const early = await check(future.certPath, future.keyPath)
    t.match(early.fake.stderr(), /^ferry: warning: tls.cert .*not valid until/)
    t.equal(early.fake.stdout(), `config ok: ${early.file}\n`)
  })
}
