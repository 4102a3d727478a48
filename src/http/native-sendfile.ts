// Loads the sendfile(2) helper that `npm run build` compiles (native/sendfile.c, built by
// scripts/build-native.mjs into dist/native/<platform>-<arch>/, so a package packed on one
// platform never loads its binary on another). Missing (no C compiler, not Linux, another
// platform's package) means blobs are sent through JavaScript buffers instead: slower, same bytes.
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

export interface SendfileTransfer {
  /** Stops the transfer at its next slice; its callback then reports ECANCELED. */
  cancel(): void
}

/** The error a transfer reports when the file ended before the range (it may still be growing). */
export const endOfFile = 'EOF'

export interface NativeSendfile {
  /**
   * Sends `length` bytes of `fileFd` from `offset` to `socketFd` (both are dup()ed first),
   * giving up after `stallMs` without progress (0: never).
   */
  start(
    socketFd: number,
    fileFd: number,
    offset: number,
    length: number,
    stallMs: number,
    done: (error: string | null, sent: number) => void,
  ): SendfileTransfer
}

// The same path from src/http (tests, via tsx) and from dist/http (the compiled server).
const modulePath = fileURLToPath(new URL(`../../dist/native/${process.platform}-${process.arch}/ferry-sendfile.node`, import.meta.url))

let loaded: { native: NativeSendfile | undefined; problem: string | undefined } | undefined

/** The helper, or undefined with the reason it is not available. */
export function nativeSendfile(): { native: NativeSendfile | undefined; problem: string | undefined } {
  if (!loaded) {
    try {
      loaded = { native: createRequire(import.meta.url)(modulePath) as NativeSendfile, problem: undefined }
    } catch (err) {
      loaded = { native: undefined, problem: `${modulePath}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` }
    }
  }
  return loaded
}
