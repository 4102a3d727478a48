// sha256 on worker threads, for the bulk import: its main thread reads the request, parses the
// tar and queues the writes, and the two hashes it cannot skip (the bundle's, for idempotence,
// and each blob's, before the blob is committed) were half of its CPU time there. Here they run
// on two workers while the main thread reads on.
//
// Each worker shares one fixed arena with the main thread: `slots` slots of `slotBytes`. A chunk
// is copied into a free slot (a copy costs a fraction of its hash) and the worker is told which
// slot to hash; its answer frees the slot. Memory is the arena, whatever the pace: with every
// slot taken, update() hands back a promise that resolves once its chunk has a slot, and the
// feeder waits. (Chunks are not posted as SharedArrayBuffers of their own: every one would stay
// alive in the worker's heap until its next garbage collection, which its few small allocations
// hardly ever start.)
import { Worker } from 'node:worker_threads'
import type { DeferredHash, DeferredHashes } from '../core/digest.js'

const slotBytes = 1024 * 1024
const slots = 4

/** The worker: one node:crypto hash per id, fed slots of the arena, each slot handed back once hashed. */
const workerSource = `
  const { parentPort, workerData } = require('node:worker_threads')
  const { createHash } = require('node:crypto')
  const arena = new Uint8Array(workerData.arena)
  const hashes = new Map()
  parentPort.on('message', (m) => {
    if (m.op === 'update') {
      let hash = hashes.get(m.id)
      if (hash === undefined) hashes.set(m.id, (hash = createHash('sha256')))
      hash.update(arena.subarray(m.slot * ${slotBytes}, m.slot * ${slotBytes} + m.length))
      parentPort.postMessage({ slot: m.slot })
    } else if (m.op === 'digest') {
      const hash = hashes.get(m.id) ?? createHash('sha256')
      hashes.delete(m.id)
      parentPort.postMessage({ id: m.id, hex: hash.digest('hex') })
    } else if (m.op === 'drop') {
      hashes.delete(m.id)
    }
  })
`

interface Reply {
  slot?: number
  id?: number
  hex?: string
}

interface Waiting {
  id: number
  chunk: Uint8Array
  resolve: () => void
  reject: (err: Error) => void
}

class HashThread {
  readonly #arena = new SharedArrayBuffer(slotBytes * slots)
  readonly #bytes = new Uint8Array(this.#arena)
  readonly #free = Array.from({ length: slots }, (_, i) => i)
  /** Chunks waiting for a slot, in the order they came. */
  readonly #waiting: Waiting[] = []
  readonly #results = new Map<number, { resolve: (hex: string) => void; reject: (err: Error) => void }>()
  readonly #worker: Worker
  /** Hashes started on this thread and not finished: how busy it is. */
  running = 0
  failure: Error | undefined

  constructor() {
    // No inherited flags: the worker needs no loader, profiler or heap setting of the process.
    this.#worker = new Worker(workerSource, { eval: true, execArgv: [], workerData: { arena: this.#arena } })
    this.#worker.unref()
    this.#worker.on('message', (reply: Reply) => this.#reply(reply))
    this.#worker.on('error', (err) => this.#fail(err))
    this.#worker.on('exit', (code) => this.#fail(new Error(`a hash thread stopped (exit code ${code})`)))
  }

  update(id: number, chunk: Uint8Array): Promise<void> | undefined {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const entry: Waiting = { id, chunk, resolve: () => undefined, reject: () => undefined }
    if (this.#waiting.length === 0 && this.#post(entry)) return undefined
    return new Promise((resolve, reject) => {
      entry.resolve = resolve
      entry.reject = reject
      this.#waiting.push(entry)
    })
  }

  digest(id: number): Promise<string> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    // After the chunks still waiting for a slot: each hash's updates are awaited before its digest.
    const result = new Promise<string>((resolve, reject) => this.#results.set(id, { resolve, reject }))
    this.#worker.postMessage({ op: 'digest', id })
    return result
  }

  drop(id: number): void {
    // A dropped hash's chunks are not hashed; whoever waited on them goes on (to find its stream ended).
    for (let i = this.#waiting.length - 1; i >= 0; i--) if (this.#waiting[i]!.id === id) this.#waiting.splice(i, 1)[0]!.resolve()
    if (this.failure === undefined) this.#worker.postMessage({ op: 'drop', id })
  }

  terminate(): Promise<number> {
    return this.#worker.terminate()
  }

  /** Copies what of the entry's chunk fits into free slots and posts it; true once all of it went, else the rest stays in the entry. */
  #post(entry: Waiting): boolean {
    while (entry.chunk.length > 0) {
      const slot = this.#free.pop()
      if (slot === undefined) return false
      const length = Math.min(entry.chunk.length, slotBytes)
      this.#bytes.set(entry.chunk.subarray(0, length), slot * slotBytes)
      this.#worker.postMessage({ op: 'update', id: entry.id, slot, length })
      entry.chunk = entry.chunk.subarray(length)
    }
    return true
  }

  #reply(reply: Reply): void {
    if (reply.slot !== undefined) {
      this.#free.push(reply.slot)
      while (this.#waiting.length > 0 && this.#free.length > 0) {
        const next = this.#waiting[0]!
        if (!this.#post(next)) break
        this.#waiting.shift()
        next.resolve()
      }
    }
    if (reply.id !== undefined && reply.hex !== undefined) {
      this.#results.get(reply.id)?.resolve(reply.hex)
      this.#results.delete(reply.id)
    }
  }

  #fail(err: Error): void {
    this.failure ??= err
    for (const waiting of this.#waiting.splice(0)) waiting.reject(this.failure)
    for (const result of this.#results.values()) result.reject(this.failure)
    this.#results.clear()
  }
}

class ThreadHash implements DeferredHash {
  #finished = false

  constructor(
    private readonly thread: HashThread,
    private readonly id: number,
  ) {
    thread.running++
  }

  update(chunk: Buffer): Promise<void> | undefined {
    if (this.#finished) throw new Error('update after digest')
    return chunk.length === 0 ? undefined : this.thread.update(this.id, chunk)
  }

  digest(): Promise<string> {
    if (this.#finished) throw new Error('digest twice')
    this.#end()
    return this.thread.digest(this.id)
  }

  dispose(): void {
    if (this.#finished) return
    this.#end()
    this.thread.drop(this.id)
  }

  #end(): void {
    this.#finished = true
    this.thread.running--
  }
}

/**
 * Two worker threads, started on first use and not holding the process open; each hash goes to
 * the one with fewer hashes running: the bundle's on one, the blob being read on the other.
 */
export class HashThreads implements DeferredHashes {
  readonly #threads: HashThread[] = []
  #nextId = 1

  constructor(private readonly size = 1) {}

  sha256(): DeferredHash {
    for (let i = 0; i < this.#threads.length; i++) if (this.#threads[i]!.failure !== undefined) this.#threads[i] = new HashThread()
    while (this.#threads.length < this.size) this.#threads.push(new HashThread())
    const thread = this.#threads.reduce((a, b) => (b.running < a.running ? b : a))
    return new ThreadHash(thread, this.#nextId++)
  }

  /** Stops the workers; hashes still running fail. */
  async close(): Promise<void> {
    const threads = this.#threads.splice(0)
    await Promise.all(threads.map((thread) => thread.terminate()))
  }
}
