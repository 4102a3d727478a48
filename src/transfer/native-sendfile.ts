// Loads the sendfile(2) helper (native/sendfile.c), the way node-gyp-build finds a native
// module, without its install-time download or build: first a release copy in
// prebuilds/linux-<arch>/ferry-sendfile.napi.<libc>.node (`node scripts/build-native.mjs
// --prebuild` writes it), then the one `npm run build` compiles into dist/native/. None
// (no C compiler, not Linux) means blobs are sent through JavaScript buffers instead: slower,
// same bytes.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/** The error a send reports when the file (or a splice lane's source socket) ended before the range (it may still be growing). */
export const endOfFile = 'EOF'

/**
 * One response's hold on the helper: duplicates of its socket and file (the caller may close its
 * own file descriptor once open() returned) and a slot on a loop thread, for ranges sent one at
 * a time.
 */
export interface SendfileLane {
  /** Sends `length` bytes of the file from `offset`. `done` runs once; the previous send must have reported. */
  send(offset: number, length: number, done: (error: string | null, sent: number) => void): void
  /** Ends the lane (idempotent): a running send stops (reports ECANCELED), the duplicates are closed, the slot freed. */
  close(): void
}

export interface SendfileStats {
  /** Loop threads running. */
  threads: number
  /** Lanes open. */
  lanes: number
  maxThreads: number
  maxLanes: number
  /** open() and openSplice() calls that returned undefined (the response went through JavaScript). */
  refused: number
  /** Splice lanes opened since the helper loaded. */
  splices: number
}

export interface NativeSendfile {
  /**
   * A lane for a response of `fileFd`'s bytes on `socketFd`, giving a send up after `stallMs`
   * without progress (0: never); undefined when every slot is taken, no loop thread could be
   * started or no descriptor is left.
   */
  open(socketFd: number, fileFd: number, stallMs: number): SendfileLane | undefined
  /**
   * A lane that splices (splice(2), through a pipe of its own) the bytes arriving on the plain-TCP
   * socket `sourceFd` to `socketFd`: send(0, length) moves the next `length` bytes. Nobody else may
   * read `sourceFd` while the lane is open. Undefined as for open().
   */
  openSplice(socketFd: number, sourceFd: number, stallMs: number): SendfileLane | undefined
  stats(): SendfileStats
  /** Caps for new lanes, per thread (JavaScript environment) that loaded the helper. */
  configure(limits: { threads?: number; lanes?: number }): SendfileStats
  /**
   * Hands the C heap's free pages back to the system (glibc's malloc_trim); whether any went.
   * Absent from a helper built before it existed.
   */
  trimMemory?(): boolean
}

/** The package root: the same from src/ under tsx and from dist/. */
const packageRoot = new URL('../../', import.meta.url)

/** Where the helper may be under `root`, most specific first. */
export function sendfileCandidates(root: URL = packageRoot): string[] {
  const folder = `${process.platform}-${process.arch}`
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  const libc = report?.header?.glibcVersionRuntime ? 'glibc' : 'musl'
  return [
    fileURLToPath(new URL(`prebuilds/${folder}/ferry-sendfile.napi.${libc}.node`, root)),
    fileURLToPath(new URL('dist/native/ferry-sendfile.node', root)),
  ]
}

export interface LoadedSendfile {
  native: NativeSendfile | undefined
  /** The file loaded. */
  path: string | undefined
  /** Why nothing loaded, or why a more specific candidate did not: each such candidate's reason. */
  problem: string | undefined
}

/** The helper, or why it is not available (Node's require cache loads each file once per thread). */
export function nativeSendfile(root: URL = packageRoot): LoadedSendfile {
  const problems: string[] = []
  const require = createRequire(import.meta.url)
  for (const path of sendfileCandidates(root)) {
    if (!existsSync(path)) continue
    try {
      return { native: require(path) as NativeSendfile, path, problem: problems.join('; ') || undefined }
    } catch (err) {
      problems.push(`${path}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`)
    }
  }
  if (problems.length === 0) problems.push(`not built (${sendfileCandidates(root).join(', ')})`)
  return { native: undefined, path: undefined, problem: problems.join('; ') }
}
