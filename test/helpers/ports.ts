// Loopback ports for servers a test starts as separate processes. A port probed free can be
// taken by another test's server before the child binds it (CI runs test files in parallel), so
// a start that must know its port up front goes through onFreePort, which tries another port
// when the first one clashed.
import { createServer } from 'node:net'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Runs start(port) on a free port; a failure that mentions the port being in use is retried on another. */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort())
    } catch (err) {
      if (attempt >= attempts || !/EADDRINUSE|address (already )?in use/i.test(String(err))) throw err
    }
  }
}
