// `ferry healthcheck`: asks the Ferry running on this host whether it is alive, for a container
// HEALTHCHECK or a monitoring script. It reads the same config `serve` reads (--config or
// FERRY_CONFIG, and FERRY_* variables), so the port and scheme follow the config; exit 0 when
// GET /healthz answers 200, 1 otherwise.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { configFile } from './config-flags.js'
import { reportingConfigErrors, type CliIo } from './io.js'

const timeoutMs = 5_000

export function addHealthcheckCommand(program: Command, io: CliIo): void {
  program
    .command('healthcheck')
    .description('check that the Ferry of this config answers /healthz on this host (exit 0 when it does)')
    .option('-c, --config <file>', 'YAML config file (default: $FERRY_CONFIG)')
    .option('--path <path>', 'the endpoint to ask: /healthz (alive) or /readyz (ready to serve)', '/healthz')
    .action(
      reportingConfigErrors(io, async (flags: { config?: string; path: string }) => {
        const file = configFile(flags, io)
        const config = await loadConfig({ ...(file === undefined ? {} : { file }), env: io.env })
        const url = healthUrl(config, flags.path)
        const outcome = await get(url)
        if (outcome === 200) return
        io.stderr.write(`ferry: ${url}: ${typeof outcome === 'number' ? `HTTP ${outcome}` : outcome}\n`)
        io.exit(1)
      }),
    )
}

/** Where this host's Ferry listens: the loopback address of a wildcard listen address. */
export function healthUrl(config: Config, path: string): string {
  const { host, port } = config.listen
  const local = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host
  return `${config.tls.serving === undefined ? 'http' : 'https'}://${local}:${port}${path}`
}

function get(url: string): Promise<number | string> {
  return new Promise((resolve) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest
    // Not verified: this asks our own process over loopback, and the certificate names the
    // address clients use, not 127.0.0.1.
    const req = send(url, { method: 'GET', rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000}s`)))
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
    req.end()
  })
}
