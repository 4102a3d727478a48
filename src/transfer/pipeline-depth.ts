// How deep a blob download's pipeline is (send-lent.ts, shared-reads.ts).

/**
 * Chunks lent per download: one leaving the socket, one queued behind it, one being read. With
 * two (one written, one read) the socket's queue was empty whenever a write finished, and it
 * idled until JavaScript issued the next write (three: ~10 % more MB/s at the same CPU).
 */
export const pipelineDepth = 3
