// Manifest loads over HTTPS with nghttp2's h2load: one C client that speaks HTTP/2 and (with
// --h1) HTTP/1.1 alike, so the two protocols are measured by the same load generator. autocannon
// speaks HTTP/1.1 only. h2load does not verify the server's certificate.
import { spawn } from 'node:child_process'

export interface H2loadResult {
  requestsPerSecond: number
  /** Mean time per request, ms (h2load reports no percentiles). */
  meanMs: number
  /** Requests answered other than 2xx, or lost to a connection error. Requests still in flight
   *  when the duration ends count as failed in h2load's own summary, and are not counted here. */
  bad: number
  /** The protocol h2load negotiated (`h2`, `http/1.1`). */
  protocol: string
}

/** `connections` connections, one request in flight on each, for `seconds` (after a 0.5 s warm-up). */
export async function h2load(options: {
  url: string
  headers: Record<string, string>
  connections: number
  seconds: number
  http1: boolean
}): Promise<H2loadResult> {
  const args = [
    ...(options.http1 ? ['--h1'] : []),
    '-c',
    String(options.connections),
    '-m',
    '1',
    '-D',
    String(options.seconds),
    '--warm-up-time=500ms',
    ...Object.entries(options.headers).flatMap(([name, value]) => ['-H', `${name}: ${value}`]),
    options.url,
  ]
  const output = await run('h2load', args)
  const rate = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(output)
  const requests = /(\d+) errored, (\d+) timeout/.exec(output)
  const status = /status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(output)
  const mean = /time for request:\s+\S+\s+\S+\s+(\S+)/.exec(output)
  const protocol = /Application protocol: (\S+)/.exec(output)
  if (!rate || !requests || !status || !mean) throw new Error(`h2load: unexpected output\n${output.slice(-2000)}`)
  return {
    requestsPerSecond: Number(rate[1]),
    meanMs: durationMs(mean[1]!),
    bad: Number(requests[1]) + Number(requests[2]) + Number(status[1]) + Number(status[2]) + Number(status[3]),
    protocol: protocol?.[1] ?? '?',
  }
}

function durationMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (!match) return Number.NaN
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${command} exited ${code}: ${output.slice(-2000)}`))))
  })
}
