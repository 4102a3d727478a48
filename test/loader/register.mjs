// TypeScript for the test processes through swc alone. `npm test` loads this file into tap with
// NODE_OPTIONS, and tap passes NODE_OPTIONS on to every test process, where it runs before tap's
// own loaders. Without it, tap's TypeScript plugin starts ts-node in each of the ~170 test
// processes, which loads the TypeScript compiler twice (main thread and hooks thread): 1.2 CPU s
// of a 1.5 CPU s test process, with ts-node's swc transpiler already on. A bare `npx tap <file>`
// still runs through ts-node.
// - TAP_TYPE_STRIP_ONLY=1 is the plugin's own switch for leaving ts-node out (meant for Node 22's
//   type stripping); the hooks below do the stripping instead.
// - Registered first, the hooks sit innermost: tap's coverage hooks, registered last, record the
//   JavaScript they return, whose inline source map leads back to the TypeScript.
// - A test's own child processes (Ferry under tsx, npm, tools) start without this file, as they
//   did under ts-node, whose loader came in execArgv rather than NODE_OPTIONS.
import { register } from 'node:module'

if (process.env.TAP_CHILD_ID !== undefined) {
  // tap quotes each option it passes on: `"--import=…/register.mjs" "--import=…"`.
  const self = /\s*"?--import=[^"\s]*test\/loader\/register\.mjs"?/
  process.env.NODE_OPTIONS = (process.env.NODE_OPTIONS ?? '').replace(self, '').trim()
  process.env.TAP_TYPE_STRIP_ONLY = '1'
  register('./hooks.mjs', import.meta.url)
}
