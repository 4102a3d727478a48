// deploy/grafana/ferry-dashboard.json queries only what Ferry exports: every metric name in every
// PromQL expression (panels and template variables) is looked up in a real scrape of a mirror
// after traffic through it (a miss, hits, concurrent blob pulls), and every label an expression
// groups or filters by is one that metric carries. Metrics from other exporters are listed here,
// by name, with the exporter the panel says they come from.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startMirrorServer, upstreamConfig } from '../helpers/mirror-server.js'
import { pushImage } from '../helpers/oci.js'
import { startTestServer } from '../helpers/server.js'

const dashboardFile = join(import.meta.dirname, '..', '..', 'deploy', 'grafana', 'ferry-dashboard.json')

/** Metrics the dashboard reads from other exporters, and the exporter its panel names. */
const external: Record<string, string> = {
  kubelet_volume_stats_used_bytes: 'kubelet',
  kubelet_volume_stats_capacity_bytes: 'kubelet',
}
// Labels Prometheus adds to every scraped series, and the bucket label of histograms.
const scrapeLabels = new Set(['job', 'instance'])
const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool'])

interface Query {
  panel: string
  description: string
  expr: string
}

/** Every PromQL expression of the dashboard, with the panel it belongs to. */
function queries(dashboard: { panels: unknown[]; templating: { list: unknown[] } }): Query[] {
  const found: Query[] = []
  for (const panel of dashboard.panels as Array<{ title: string; description?: string; targets?: Array<{ expr: string }> }>) {
    for (const target of panel.targets ?? []) found.push({ panel: panel.title, description: panel.description ?? '', expr: target.expr })
  }
  for (const variable of dashboard.templating.list as Array<{ name: string; query?: unknown }>) {
    const query = typeof variable.query === 'object' && variable.query !== null ? (variable.query as { query: string }).query : undefined
    if (query !== undefined) found.push({ panel: `$${variable.name}`, description: '', expr: query })
  }
  return found
}

/** Metric names of an expression: identifiers that are no function, keyword, label or duration. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names = [...bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)]
    .filter((m) => m[2] === undefined && !keywords.has(m[1]!))
    .map((m) => m[1]!)
  // label_values(metric, label): the first argument is a metric, the second a label.
  const labelValues = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*(\w+)\s*\)/.exec(expr)
  return [...new Set(labelValues ? [labelValues[1]!] : names)]
}

/** Label names an expression filters on or groups by. */
function labelNames(expr: string): string[] {
  const inMatchers = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!))
  const grouped = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()))
  return [...new Set([...inMatchers, ...grouped])].filter((l) => l !== '')
}

interface Family {
  type: string
  /** Label names seen on its samples. */
  labels: Set<string>
  samples: number
}

function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type) families.set(type[1]!, { type: type[2]!, labels: new Set(), samples: 0 })
    if (line === '' || line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line)
    if (!sample) continue
    const family = familyOf(families, sample[1]!)
    if (!family) continue
    family.samples++
    for (const label of (sample[2] ?? '').matchAll(/(\w+)="/g)) family.labels.add(label[1]!)
  }
  return families
}

function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const direct = families.get(name)
  if (direct) return direct
  const base = name.replace(/_(bucket|sum|count)$/, '')
  const family = families.get(base)
  return family && (family.type === 'histogram' || family.type === 'summary') ? family : undefined
}

t.test('every metric and label the dashboard queries is one a running Ferry exports', async (t) => {
  const dashboard = JSON.parse(await readFile(dashboardFile, 'utf8'))
  const upstream = await startTestServer()
  t.teardown(() => upstream.close())
  const image = await pushImage(upstream, 'library/app', 'v1', { layerCount: 2 })
  const mirror = await startMirrorServer({ upstreams: [upstreamConfig('gcr.io', upstream.url)], defaultUpstream: 'gcr.io' })
  t.teardown(() => mirror.close())

  // A miss then hits for the manifest; concurrent pulls of each blob (a fill and its followers).
  const get = async (path: string, accept = image.manifest.mediaType): Promise<void> => {
    const res = await fetch(`${mirror.url}${path}`, { headers: { accept } })
    t.equal(res.status, 200, `GET ${path}`)
    await res.arrayBuffer()
  }
  for (let i = 0; i < 2; i++) await get('/v2/library/app/manifests/v1')
  for (const blob of [image.config, ...image.layers]) {
    await Promise.all([1, 2, 3].map(() => get(`/v2/library/app/blobs/${blob.digest}`, '*/*')))
    await get(`/v2/library/app/blobs/${blob.digest}`, '*/*')
  }
  const missing = await fetch(`${mirror.url}/v2/library/absent/manifests/v1`)
  t.equal(missing.status, 404)
  const families = parseExposition(await (await fetch(`${mirror.url}/metrics`)).text())

  const all = queries(dashboard)
  t.ok(all.length >= 15, `${all.length} queries`)
  for (const { panel, description, expr } of all) {
    const names = metricNames(expr)
    t.ok(names.length > 0, `${panel}: ${expr} names a metric`)
    for (const name of names) {
      if (!name.startsWith('ferry_')) {
        t.ok(
          external[name] !== undefined && description.includes(external[name]),
          `${panel}: ${name} is from ${external[name]}, as the panel says`,
        )
        continue
      }
      const family = familyOf(families, name)
      t.ok(family, `${panel}: ${name} is exported`)
      if (!family) continue
      // A metric without samples yet (no stale serve happened) has no labels to compare.
      if (family.samples === 0) continue
      const known = new Set([...family.labels, ...scrapeLabels])
      for (const label of labelNames(expr)) t.ok(known.has(label), `${panel}: ${name} has label ${label}`)
    }
  }

  // The traffic above must have produced what the main panels chart.
  for (const name of [
    'ferry_mirror_cache_lookups_total',
    'ferry_http_sent_bytes_total',
    'ferry_upstream_received_bytes_total',
    'ferry_upstream_requests_total',
    'ferry_http_request_duration_seconds',
    'ferry_upstream_request_duration_seconds',
  ]) {
    t.ok((families.get(name)?.samples ?? 0) > 0, `${name} has samples after traffic`)
  }
})

t.test('metric names are found in PromQL as Prometheus reads it', async (t) => {
  t.same(metricNames('sum by (kind) (rate(a_total{job=~"$job", result=~"x|y"}[5m])) / sum(b_total)'), ['a_total', 'b_total'])
  t.same(metricNames('histogram_quantile(0.99, sum by (route, le) (rate(c_bucket[$__rate_interval])))'), ['c_bucket'])
  t.same(metricNames('min(d_seconds{job=~"$job"}) - time()'), ['d_seconds'])
  t.same(metricNames('label_values(e_total, job)'), ['e_total'])
})
