// bin/ferry.js in a clone that was never built (npm install no longer builds) says what to run,
// instead of an ERR_MODULE_NOT_FOUND stack trace.
import { spawnSync } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

t.test('without dist/, ferry names the build command and exits 1', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-launcher-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'bin'))
  await copyFile(join(import.meta.dirname, '..', '..', 'bin', 'ferry.js'), join(dir, 'bin', 'ferry.js'))
  const result = spawnSync(process.execPath, [join(dir, 'bin', 'ferry.js'), '--version'], { encoding: 'utf8' })
  t.equal(result.status, 1)
  t.match(result.stderr, /^ferry: .*dist\/cli\/main\.js is missing: run `npm run build`/)
  t.notMatch(result.stderr, /ERR_MODULE_NOT_FOUND|\n\s+at /, 'no stack trace')
})
