// A minimal node:http2 client for tests: one session per call unless one is passed in, the
// whole body collected (or handed back as a stream for slow reading).
import {
  connect,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2'

export interface H2Response {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

export function h2Session(origin: string, options: SecureClientSessionOptions = {}): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(origin, { servername: 'localhost', ...options })
    session.once('error', reject)
    session.once('connect', () => {
      session.removeListener('error', reject)
      // A later session error surfaces on the streams; keep it from crashing the test process.
      session.on('error', () => {})
      resolve(session)
    })
  })
}

/** Starts a request; the caller reads (or does not read) the stream. */
export function h2Stream(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}, body?: Buffer): ClientHttp2Stream {
  const stream = session.request({ ':path': path, ...headers }, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  return stream
}

export function h2Headers(stream: ClientHttp2Stream): Promise<IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    stream.once('response', resolve)
    stream.once('error', reject)
  })
}

/** One request on `session` (or on a new session to `origin`, closed afterwards). */
export async function h2Request(
  target: ClientHttp2Session | string,
  path: string,
  options: { headers?: OutgoingHttpHeaders; body?: Buffer; session?: SecureClientSessionOptions } = {},
): Promise<H2Response> {
  const session = typeof target === 'string' ? await h2Session(target, options.session) : target
  try {
    const stream = h2Stream(session, path, options.headers, options.body)
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    const headers = await h2Headers(stream)
    await new Promise<void>((resolve, reject) => {
      stream.once('end', resolve)
      stream.once('error', reject)
    })
    return { status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }
  } finally {
    if (typeof target === 'string') session.close()
  }
}
