// `ferry serve` on S3 prints no AWS SDK NodeVersionSupportWarning (Node < 22): it is news for
// whoever picks Ferry's Node version, not for the operator reading its output (cli/io.ts).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFerryProcess } from '../helpers/ferry-process.js'

const variable = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'
// The test helpers quiet the warning for test processes (s3-server.ts); Ferry must do it itself.
delete process.env[variable]
process.env.FERRY_TEST_STORAGE = 's3'
const major = Number(process.versions.node.split('.')[0])

t.test('ferry serve on S3 says nothing about the Node version, unless the environment asks for it', { skip: major >= 22 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-sdk-warning-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const serve = ['serve', '--listen', '127.0.0.1:0', '--storage', join(dir, 'data')]
  const quiet = await startFerryProcess(serve)
  await quiet.stop()
  t.notMatch(quiet.logs(), /NodeVersionSupportWarning/)
  t.match(quiet.logs(), /ferry started/)
  // The control: the same start with the switch set otherwise shows the warning, so the check above can see it.
  const told = await startFerryProcess(serve, { env: { [variable]: 'false' } })
  await told.stop()
  t.match(told.logs(), /NodeVersionSupportWarning/)
})
