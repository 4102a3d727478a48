// Builds how blob bytes leave the process: one block budget per process, shared by stored-blob
// downloads and mirror fills and reported on /metrics, and the sender that picks sendfile(2),
// shared blocks or a plain pipe for each body.
import type { Metrics } from '../observability/metrics.js'
import { BlobSender } from '../transfer/blob-sender.js'
import { nativeSendfile } from '../transfer/native-sendfile.js'
import { BlockBudget, defaultBlockBudgetBytes } from '../transfer/shared-blocks.js'
import { gcThenTrim, majorGc, minorGc, reclaimWhenIdle, scavengeWhileFilling } from './memory-reclaim.js'

export interface Transfer {
  budget: BlockBudget
  sender: BlobSender
  /** Why the sendfile(2) helper is not used although http.sendfile asks for it (undefined: it is, or it is off). */
  sendfileProblem: string | undefined
  /** Stops reclaiming the blocks' memory after transfers (the app is closing). */
  stop(): void
}

export function composeTransfer(options: { sendfile: boolean; metrics: Metrics }): Transfer {
  const budget = new BlockBudget(defaultBlockBudgetBytes)
  options.metrics.reportBlockMemory(budget)
  const { native, problem } = options.sendfile ? nativeSendfile() : { native: undefined, problem: undefined }
  const gc = majorGc()
  const trim = native?.trimMemory?.bind(native)
  const scavenge = minorGc()
  const stopReclaim = gc ? reclaimWhenIdle(budget, gcThenTrim(gc, trim)) : () => {}
  const stopScavenges = scavenge ? scavengeWhileFilling(budget, scavenge) : () => {}
  const stop = (): void => {
    stopReclaim()
    stopScavenges()
  }
  return { budget, sender: new BlobSender({ budget, sendfile: native }), sendfileProblem: native ? undefined : problem, stop }
}
