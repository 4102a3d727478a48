// Summarises V8 .cpuprofile files (from `BENCH_CPU_PROF=<dir> npm run bench -- <scenario>`, which
// runs Ferry under `node --cpu-prof`): the functions with the most self time, and the most
// inclusive ("total") time, idle time excluded from the percentages.
// Run: npx tsx bench/profile-summary.ts <file.cpuprofile | dir> [top=25]
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

function shortUrl(url: string): string {
  if (url === '') return ''
  const modules = url.lastIndexOf('/node_modules/')
  if (modules >= 0) return url.slice(modules + '/node_modules/'.length)
  const dist = url.lastIndexOf('/dist/')
  if (dist >= 0) return url.slice(dist + 1)
  return url.replace(/^file:\/\//, '')
}

function keyOf(frame: CallFrame): string {
  const where = shortUrl(frame.url)
  return `${frame.functionName || '(anonymous)'}${where ? ` ${where}:${frame.lineNumber + 1}` : ''}`
}

async function files(target: string): Promise<string[]> {
  if ((await stat(target)).isDirectory())
    return (await readdir(target)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(target, f))
  return [target]
}

async function summarise(file: string, top: number): Promise<void> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let all = 0
  let idle = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    // V8 records the time since the previous sample with each sample; attribute it to this one.
    const ms = (profile.timeDeltas[i] ?? 0) / 1000
    const node = byId.get(id)
    if (!node) continue
    all += ms
    if (node.callFrame.functionName === '(idle)') {
      idle += ms
      continue
    }
    const key = keyOf(node.callFrame)
    self.set(key, (self.get(key) ?? 0) + ms)
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = keyOf(byId.get(at)!.callFrame)
      if (seen.has(k)) continue
      seen.add(k)
      total.set(k, (total.get(k) ?? 0) + ms)
    }
  }
  const busy = all - idle
  const pct = (ms: number): string => `${((100 * ms) / busy).toFixed(1)}%`
  const list = (map: Map<string, number>): string[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, ms]) => `| ${pct(ms)} | ${ms.toFixed(0)} | \`${k.replace(/\|/g, '\\|')}\` |`)
  console.log(
    `## ${file}\n\nsampled ${(all / 1000).toFixed(1)} s, busy ${(busy / 1000).toFixed(1)} s (idle ${(idle / 1000).toFixed(1)} s)\n`,
  )
  console.log(`### top ${top} by self time (% of busy)\n\n| self | ms | function |\n|---|---|---|\n${list(self).join('\n')}\n`)
  const skip = new Set(['(root)', '(program)'])
  for (const k of skip) total.delete(k)
  console.log(`### top ${top} by total time\n\n| total | ms | function |\n|---|---|---|\n${list(total).join('\n')}\n`)
}

const [target, topArg] = process.argv.slice(2)
if (!target) {
  console.error('usage: tsx bench/profile-summary.ts <file.cpuprofile | dir> [top]')
  process.exit(2)
}
for (const file of await files(target)) await summarise(file, Number(topArg ?? 25))
