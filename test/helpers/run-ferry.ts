// The `ferry` program run from source, as bin/ferry.js runs the compiled one:
// `node --import tsx test/helpers/run-ferry.ts serve ...`. Used by ferry-process.ts.
import { runCli } from '../../src/cli/main.js'

// A test runner killed outright (tap's timeout, SIGKILL) cannot stop its children. With
// RUN_FERRY_EXIT_WITH_PARENT=1 the parent holds our stdin open; when the pipe closes the parent
// is gone, and so is the reader of our stdout. A graceful SIGTERM shutdown would then hang:
// pino's exit-time flushSync retries write(1) = EPIPE forever (see the e2e report), so exit
// at once; nobody is left to care about in-flight requests.
if (process.env.RUN_FERRY_EXIT_WITH_PARENT === '1') {
  const die = (): void => void process.kill(process.pid, 'SIGKILL')
  process.stdin.on('end', die)
  process.stdin.on('error', die)
  process.stdin.resume()
  // Watching the parent must not keep Ferry alive: a clean shutdown ends by the loop running dry.
  ;(process.stdin as unknown as { unref?: () => void }).unref?.()
}

await runCli(process.argv)
