// The answer of a token endpoint (a registry's Docker token realm, or an OAuth2 token_uri): 200
// with a bounded JSON object, else an error that names the endpoint and never the request, which
// carries credentials or a signed assertion. A 4xx is a refusal of our credentials ('auth').
import { ClientError } from './client-error.js'
import type { ClientResponse } from './http-exchange.js'

export async function readTokenAnswer(response: ClientResponse, what: string, maxBytes: number): Promise<Record<string, unknown>> {
  if (response.status !== 200) {
    await response.dump()
    const kind = response.status >= 400 && response.status < 500 ? 'auth' : 'unavailable'
    throw new ClientError(kind, `${what}: answered ${response.status}`)
  }
  let body: unknown
  try {
    body = JSON.parse((await response.read(maxBytes)).toString('utf8'))
  } catch (err) {
    if (err instanceof ClientError) throw err
    throw new ClientError('protocol', `${what}: answer is not JSON`)
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new ClientError('protocol', `${what}: answer is not a JSON object`)
  return body as Record<string, unknown>
}
