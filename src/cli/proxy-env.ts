// HTTPS_PROXY, HTTP_PROXY and NO_PROXY (or their lowercase forms) as the defaults of
// mirror.proxy: the config file, FERRY_MIRROR_PROXY_* and flags all override them. Upper case
// wins over lower case, as in Go; an empty value counts as unset.
import type { EnvOverrides } from '../config/env.js'

const variables = {
  httpsProxy: ['HTTPS_PROXY', 'https_proxy'],
  httpProxy: ['HTTP_PROXY', 'http_proxy'],
  noProxy: ['NO_PROXY', 'no_proxy'],
} as const

export function proxyDefaultsFromEnv(env: Record<string, string | undefined>): EnvOverrides {
  const proxy: Record<string, string> = {}
  const sources = new Map<string, string>()
  for (const [key, names] of Object.entries(variables)) {
    const name = names.find((n) => (env[n] ?? '').trim() !== '')
    if (name === undefined) continue
    proxy[key] = env[name]!.trim()
    sources.set(`mirror.proxy.${key}`, name)
  }
  return { data: sources.size > 0 ? { mirror: { proxy } } : {}, sources }
}

/** `ferry config print` output without proxy passwords: `http://user:***@proxy:3128`. */
export function redactProxyPasswords<
  T extends { mirror: { proxy: { httpsProxy: string; httpProxy: string }; upstreams: Array<{ proxy: string }> } },
>(raw: T): T {
  const redact = (value: string): string => value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*):[^@/]*@/i, '$1:***@')
  raw.mirror.proxy.httpsProxy = redact(raw.mirror.proxy.httpsProxy)
  raw.mirror.proxy.httpProxy = redact(raw.mirror.proxy.httpProxy)
  for (const upstream of raw.mirror.upstreams) upstream.proxy = redact(upstream.proxy)
  return raw
}
