// ConfigError is what callers see; ConfigIssue is the internal form (a key path and a problem)
// raised by the checks, which load.ts turns into a ConfigError naming where the value came from.

export interface ConfigErrorDetails {
  /** Dotted key path of the offending value, e.g. "storage.uploads.maxAge". */
  key?: string
  /** Config file the offending value (or the YAML syntax error) came from. */
  file?: string
  /** 1-based line in `file`. */
  line?: number
  /** Environment variable the offending value came from. */
  envVar?: string
}

export class ConfigError extends Error {
  readonly key: string | undefined
  readonly file: string | undefined
  readonly line: number | undefined
  readonly envVar: string | undefined

  constructor(message: string, details: ConfigErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConfigError'
    this.key = details.key
    this.file = details.file
    this.line = details.line
    this.envVar = details.envVar
  }
}

export function isConfigError(err: unknown): err is ConfigError {
  return err instanceof ConfigError
}

export class ConfigIssue extends Error {
  constructor(
    /** Key path; empty when the problem is not about one key (e.g. an unknown variable). */
    readonly path: readonly string[],
    /** What is wrong, e.g. `expected a duration like "24h", got "soon"`. */
    readonly problem: string,
  ) {
    super(problem)
    this.name = 'ConfigIssue'
  }
}

/** How a value appears in messages: strings and numbers as JSON, structures by their kind. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
    return JSON.stringify(value)
  }
  return String(value)
}

export function expectedGot(expected: string, value: unknown): string {
  if (value === undefined) return `missing: expected ${expected}`
  return `expected ${expected}, got ${describeValue(value)}`
}

/** The closest candidate within a small edit distance, for "did you mean ...?" hints. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution)
    }
    previous = current
  }
  return previous[b.length] ?? 0
}
