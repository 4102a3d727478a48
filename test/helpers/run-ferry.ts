// The `ferry` program run from source, as bin/ferry.js runs the compiled one:
// `node --import tsx test/helpers/run-ferry.ts serve ...`. Used by ferry-process.ts.
import { runCli } from '../../src/cli/main.js'

await runCli(process.argv)
