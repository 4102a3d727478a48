// The running sha256 of an upload session. Node's hash is the fast one, but its state cannot be
// saved; on shared object storage a session may continue on another replica, so there the hash is
// hash-wasm's, whose state (~100 bytes) is stored with the session after every append and loaded
// by whichever replica receives the next chunk: nobody re-reads the bytes already received.
import { createHash, type Hash } from 'node:crypto'
import { createSHA256, type IHasher } from 'hash-wasm'

export interface RunningHash {
  update(chunk: Uint8Array): void
  /** Hex digest of the bytes so far; the hash goes on. */
  peek(): string
  /** The state to store with the session, or undefined when this hash cannot save one. */
  save(): Uint8Array | undefined
}

class NodeRunningHash implements RunningHash {
  readonly #hash: Hash = createHash('sha256')
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk)
  }
  peek(): string {
    return this.#hash.copy().digest('hex')
  }
  save(): undefined {
    return undefined
  }
}

class SavableRunningHash implements RunningHash {
  constructor(private readonly hasher: IHasher) {}
  update(chunk: Uint8Array): void {
    this.hasher.update(chunk)
  }
  peek(): string {
    const state = this.hasher.save()
    const hex = this.hasher.digest('hex')
    this.hasher.load(state)
    return hex
  }
  save(): Uint8Array {
    return this.hasher.save()
  }
}

/** A fresh sha256; `savable` when its state must be stored with the session. */
export async function runningSha256(savable: boolean, state?: Uint8Array): Promise<RunningHash> {
  if (!savable) return new NodeRunningHash()
  const hasher = await createSHA256()
  if (state === undefined) hasher.init()
  else hasher.load(state)
  return new SavableRunningHash(hasher)
}
