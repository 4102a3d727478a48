// NO_PROXY as curl and Go read it: a comma (or space) separated list where each entry is
//   `*`                 every host bypasses the proxy;
//   `example.com`       that host and all its subdomains (`a.example.com`);
//   `.example.com`      the same (curl strips the leading dot; Go would skip example.com itself);
//   `10.0.0.0/8`        an IP range in CIDR notation (IPv4 or IPv6), or a single IP address;
//   `host:5000`         any of the above, only for that port (`[::1]:5000` for IPv6).
// Matching is case-insensitive and ignores a trailing dot. Loopback is not bypassed implicitly
// (curl's behaviour; Go's would make a local proxy in front of a local registry impossible).
import { BlockList, isIP } from 'node:net'

interface Entry {
  /** Lower-case host without leading or trailing dots, or undefined for an IP range. */
  domain?: string
  range?: BlockList
  /** Only this port, when the entry named one. */
  port?: number
}

export class NoProxy {
  readonly #all: boolean
  readonly #entries: Entry[]

  constructor(list: string | undefined) {
    const items = (list ?? '')
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter((s) => s !== '')
    this.#all = items.includes('*')
    this.#entries = items.filter((s) => s !== '*').flatMap((item) => parseEntry(item) ?? [])
  }

  /** Whether a request to `url` goes direct rather than through the proxy. */
  bypasses(url: URL): boolean {
    if (this.#all) return true
    const host = normaliseHost(url.hostname)
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
    const family = isIP(host)
    return this.#entries.some((entry) => {
      if (entry.port !== undefined && entry.port !== port) return false
      if (entry.range) return family !== 0 && entry.range.check(host, family === 6 ? 'ipv6' : 'ipv4')
      return family === 0 && (host === entry.domain || host.endsWith(`.${entry.domain}`))
    })
  }
}

function normaliseHost(host: string): string {
  return host
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase()
}

function parseEntry(item: string): Entry | undefined {
  let host = item.toLowerCase()
  let port: number | undefined
  // `[v6]:port`, `host:port` (one colon only: a bare IPv6 address has several).
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(host)
  if (bracketed) {
    host = bracketed[1]!
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2])
  } else {
    const withPort = /^([^:]+):(\d+)$/.exec(host)
    if (withPort) {
      host = withPort[1]!
      port = Number(withPort[2])
    }
  }
  const portPart = port === undefined ? {} : { port }
  const cidr = /^([^/]+)\/(\d{1,3})$/.exec(host)
  const address = cidr ? cidr[1]! : host
  const family = isIP(address)
  if (family !== 0) {
    const prefix = cidr ? Number(cidr[2]) : family === 6 ? 128 : 32
    if (prefix > (family === 6 ? 128 : 32)) return undefined
    const range = new BlockList()
    range.addSubnet(address, prefix, family === 6 ? 'ipv6' : 'ipv4')
    return { range, ...portPart }
  }
  const domain = host.replace(/^\*?\.+/, '').replace(/\.$/, '')
  return domain === '' || domain.includes('/') ? undefined : { domain, ...portPart }
}
