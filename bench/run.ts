// `npm run bench -- [scenario...]`: builds Ferry, starts every server on loopback itself, runs
// the scenarios (all by default) in alternating rounds, prints Markdown tables of medians with
// ratios against CNCF distribution, writes bench/results/latest.json, and stops every process it
// started by PID. Scenarios: blobs, manifests, fanout, upload, cold, auth, memory, bundles, bundle-import, s3, tls, scale. See bench/README.md.
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { blobDownload } from './scenarios/blob-download.js'
import { bundles } from './scenarios/bundles.js'
import { coldFanout } from './scenarios/cold-fanout.js'
import { coldSingle } from './scenarios/cold-single.js'
import { authPulls } from './scenarios/auth.js'
import { memory } from './scenarios/memory.js'
import { manifests } from './scenarios/manifests.js'
import { upload } from './scenarios/upload.js'
import { bundleImport } from './scenarios/bundle-import.js'
import { s3 } from './scenarios/s3.js'
import { tls } from './scenarios/tls.js'
import { scale } from './scenarios/scale.js'
import { projectRoot, stopAll } from './lib/processes.js'
import type { Scenario, ScenarioResult } from './lib/scenario.js'
import { disturbedMeasurements, waitForQuiet } from './lib/quiet.js'
import { describeSettings, loadSettings } from './lib/settings.js'
import { progress, table } from './lib/stats.js'

const scenarios: Scenario[] = [
  blobDownload,
  manifests,
  coldFanout,
  upload,
  coldSingle,
  authPulls,
  memory,
  bundles,
  bundleImport,
  s3,
  tls,
  scale,
]

function usage(): never {
  console.error(`usage: npm run bench -- [${scenarios.map((s) => s.name).join(' | ')} ...]
environment: BENCH_ROUNDS=<n> (default 5), BENCH_QUICK=1 (small blobs, 2 rounds), BENCH_CPU_PROF=<dir>
(run Ferry with --cpu-prof), BENCH_KEEP=1 (keep the work folder), BENCH_TMPDIR=<dir> (where it goes),
BENCH_FERRY_DIST=<dist folder> (measure another build of Ferry), BENCH_RESULTS=<file> (JSON output,
default bench/results/latest.json), BENCH_NODE_ARGS='<flags>' (extra node flags for Ferry and the file server),
BENCH_CACHE_DIR=<dir> (where the bundles scenario keeps its bundles; default bench/.cache)`)
  process.exit(2)
}

function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU'
  let distribution = 'unknown'
  try {
    distribution = execFileSync('/usr/bin/docker-registry', ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    // reported as unknown
  }
  return `${cpus().length} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${distribution}, ${new Date().toISOString().slice(0, 10)}`
}

/** Which Ferry build is measured: BENCH_FERRY_DIST, or this checkout's dist/ (with its commit). */
function ferryBuild(): string {
  const dist = process.env.BENCH_FERRY_DIST
  if (dist) return `dist/ at ${dist}`
  let commit = 'unknown commit'
  try {
    commit = execFileSync('git', ['describe', '--always', '--dirty'], { cwd: projectRoot, encoding: 'utf8' }).trim()
  } catch {
    // not a git checkout
  }
  return `this checkout's dist/ (${commit})`
}

async function main(): Promise<void> {
  const names = process.argv.slice(2).filter((a) => a !== '--')
  if (names.includes('-h') || names.includes('--help')) usage()
  const selected = names.length === 0 ? scenarios : names.map((name) => scenarios.find((s) => s.name === name) ?? usage())
  const settings = loadSettings()
  const root = await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'ferry-bench-'))
  const onSignal = (signal: NodeJS.Signals): void => {
    progress(`${signal}: stopping servers`)
    void stopAll()
      .then(() => (settings.keep ? undefined : rm(root, { recursive: true, force: true })))
      .finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const started = performance.now()
  // Another workload on the machine (a test suite, a build) skews every figure: say so.
  const loadAtStart = loadavg()[0]!
  if (loadAtStart > 0.5)
    progress(`warning: the machine is not idle (1-minute load average ${loadAtStart.toFixed(2)}); figures will be noisy`)
  const header = `Machine: ${machine()}\nFerry: ${ferryBuild()}\nSettings: ${describeSettings(settings)}`
  progress(header.replaceAll('\n', '; '))
  await waitForQuiet()
  const results: Array<{ scenario: Scenario; result: ScenarioResult; seconds: number }> = []
  try {
    for (const scenario of selected) {
      const dir = join(root, scenario.name)
      await mkdir(dir, { recursive: true })
      const t0 = performance.now()
      const result = await scenario.run({ settings, dir })
      const seconds = (performance.now() - t0) / 1000
      results.push({ scenario, result, seconds })
      progress(`${scenario.name} done in ${seconds.toFixed(0)} s`)
      if (!settings.keep) await rm(dir, { recursive: true, force: true })
    }
  } finally {
    await stopAll()
    if (!settings.keep) await rm(root, { recursive: true, force: true })
    else progress(`work folder kept: ${root}`)
  }

  const totalSeconds = (performance.now() - started) / 1000
  const disturbed = disturbedMeasurements()
  const load = [
    `Load average (1 min) at start ${loadAtStart.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)}.`,
    `Measurements disturbed by other processes (kept after 3 attempts): ${disturbed}.`,
  ].join(' ')
  const out: string[] = [`# Ferry benchmark`, '', header, load, '']
  for (const { scenario, result, seconds } of results)
    out.push(`## ${scenario.title}`, '', result.markdown, '', `(${seconds.toFixed(0)} s)`, '')
  const checks = results.flatMap((r) => r.result.checks)
  if (checks.length > 0) {
    out.push(
      '## Targets from issue #6',
      '',
      table(
        ['target', 'measured', 'holds'],
        checks.map((c) => [c.target, c.measured, c.holds ? 'yes' : '**no**']),
      ),
      '',
    )
  }
  out.push(`Total ${totalSeconds.toFixed(0)} s.`)
  console.log(out.join('\n'))

  const resultsFile = process.env.BENCH_RESULTS ?? join(projectRoot, 'bench', 'results', 'latest.json')
  await mkdir(dirname(resultsFile), { recursive: true })
  const json = {
    date: new Date().toISOString(),
    machine: machine(),
    ferry: ferryBuild(),
    settings,
    totalSeconds,
    loadAverageAtStart: loadAtStart,
    disturbedMeasurements: disturbed,
    scenarios: Object.fromEntries(
      results.map(({ scenario, result, seconds }) => [scenario.name, { seconds, checks: result.checks, data: result.json }]),
    ),
  }
  await writeFile(resultsFile, `${JSON.stringify(json, null, 1)}\n`)
}

main().catch(async (err: unknown) => {
  console.error(err)
  await stopAll()
  process.exit(1)
})
