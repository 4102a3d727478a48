// Benchmark sizes and round counts, from the environment. BENCH_QUICK=1 shrinks everything so a
// whole run stays under a few minutes; BENCH_ROUNDS overrides the number of alternating rounds.
const MiB = 1024 * 1024

export interface Settings {
  quick: boolean
  /** Alternating rounds per measurement; the tables show medians over them. */
  rounds: number
  /** Scenario 1: the single-client blob. */
  singleBlobBytes: number
  /** Scenario 1: one blob per concurrent client. */
  concurrentClients: number
  concurrentBlobBytes: number
  /** Scenario 2: autocannon connections and seconds per measurement. */
  manifestConnections: number
  manifestSeconds: number
  /** Scenario 3: clients on one uncached blob. */
  fanoutClients: number
  fanoutBlobBytes: number
  /** Scenario 5: the uploaded blob and the chunk size of the chunked upload. */
  uploadBytes: number
  uploadChunkBytes: number
  /** Scenario 6: the blob bytes of the multi-image bundle. */
  bundleBytes: number
  /** Keep the work folder (blobs, server logs, storage) instead of deleting it. */
  keep: boolean
}

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return value
}

function flag(name: string): boolean {
  const raw = process.env[name]
  return raw !== undefined && raw !== '' && raw !== '0' && raw.toLowerCase() !== 'false'
}

export function loadSettings(): Settings {
  const quick = flag('BENCH_QUICK')
  return {
    quick,
    rounds: positiveInt('BENCH_ROUNDS', quick ? 2 : 5),
    singleBlobBytes: positiveInt('BENCH_SINGLE_MIB', quick ? 256 : 1024) * MiB,
    concurrentClients: 16,
    concurrentBlobBytes: positiveInt('BENCH_CONCURRENT_MIB', quick ? 16 : 64) * MiB,
    manifestConnections: 64,
    manifestSeconds: positiveInt('BENCH_MANIFEST_SECONDS', quick ? 2 : 3),
    fanoutClients: 32,
    fanoutBlobBytes: positiveInt('BENCH_FANOUT_MIB', quick ? 64 : 256) * MiB,
    uploadBytes: positiveInt('BENCH_UPLOAD_MIB', quick ? 256 : 1024) * MiB,
    uploadChunkBytes: 64 * MiB,
    bundleBytes: positiveInt('BENCH_BUNDLE_MIB', quick ? 240 : 1100) * MiB,
    keep: flag('BENCH_KEEP'),
  }
}

export function describeSettings(s: Settings): string {
  const mib = (bytes: number): string => `${bytes / MiB} MiB`
  return [
    `${s.rounds} alternating rounds${s.quick ? ' (quick mode)' : ''}`,
    `single blob ${mib(s.singleBlobBytes)}`,
    `${s.concurrentClients}×${mib(s.concurrentBlobBytes)} concurrent`,
    `manifests ${s.manifestConnections} connections × ${s.manifestSeconds} s`,
    `fan-out ${s.fanoutClients}×${mib(s.fanoutBlobBytes)}`,
    `upload ${mib(s.uploadBytes)} (chunks of ${mib(s.uploadChunkBytes)})`,
    `bundle ${mib(s.bundleBytes)}`,
  ].join(', ')
}
