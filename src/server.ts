// Starts Ferry on the configured address and stops it gracefully: stop accepting, let requests
// in flight (long blob downloads included) finish for up to http.shutdownTimeout, then cut.
import { mkdir } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { compose } from './compose.js'
import type { Config } from './config/schema.js'

export interface RunningServer {
  url: string
  close(): Promise<void>
}

export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  if (config.storage.driver === 'filesystem') await mkdir(config.storage.filesystem.path, { recursive: true })
  const composed = await compose(config, logger)
  const { app } = composed
  app.server.keepAliveTimeout = config.http.idleTimeout
  // Idle sockets (a stalled client mid-upload included) are cut after the same idle time;
  // there is deliberately no whole-request timeout.
  app.server.timeout = config.http.idleTimeout
  await app.listen({ host: config.listen.host, port: config.listen.port })
  composed.startHousekeeping()
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  logger.info({ driver: config.storage.driver, path: config.storage.filesystem.path, deleteEnabled: config.storage.deleteEnabled }, 'storage ready')

  return {
    url: `http://${host}:${address.port}`,
    async close() {
      composed.stop()
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          logger.warn({ ms: config.http.shutdownTimeout }, 'shutdown timeout reached, closing remaining connections')
          app.server.closeAllConnections()
          resolve()
        }, config.http.shutdownTimeout)
      })
      const started = Date.now()
      await Promise.race([app.close(), deadline])
      clearTimeout(timer)
      await composed.close(Math.max(0, config.http.shutdownTimeout - (Date.now() - started)))
    },
  }
}
