// What a scenario is given and what it hands back to bench/run.ts.
import type { Settings } from './settings.js'

export interface BenchContext {
  settings: Settings
  /** A fresh folder for this scenario's blobs, server storage and logs. */
  dir: string
}

/** One of the targets, and whether this run met it. */
export interface TargetCheck {
  target: string
  holds: boolean
  measured: string
}

export interface ScenarioResult {
  /** Markdown: one or more tables plus notes. */
  markdown: string
  checks: TargetCheck[]
  json: unknown
}

export interface Scenario {
  /** Name on the command line: `npm run bench -- <name>`. */
  name: string
  title: string
  run(ctx: BenchContext): Promise<ScenarioResult>
}
