// The FormPost that credential providers use for OAuth2 token exchanges (a service-account
// JWT-bearer grant at Google's token_uri): its own connection pool, bounded answers, and errors
// that name the endpoint but never the form (it carries a signed assertion).
import { ClientError } from './client-error.js'
import type { FormPost } from './credentials.js'
import { HttpTransport, describe } from './http-exchange.js'
import { readTokenAnswer } from './token-answer.js'
import type { ClientTimeouts, DispatcherSource } from './transport.js'

const maxAnswerBytes = 1024 * 1024

export interface FormPoster {
  post: FormPost
  close(): Promise<void>
}

/**
 * With `source` (an upstream's transport, so its proxy and CA rules apply to the token endpoint
 * too) the connections are borrowed: close() leaves them to their owner.
 */
export function createFormPoster(options: { timeouts?: ClientTimeouts; userAgent?: string; source?: DispatcherSource } = {}): FormPoster {
  const transport = new HttpTransport(options.timeouts, options.source)
  const userAgent = options.userAgent ?? 'ferry'
  return {
    async post(target, form, signal) {
      let url: URL
      try {
        url = new URL(target)
      } catch {
        throw new ClientError('protocol', 'token endpoint is not a URL')
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ClientError('protocol', `${describe('POST', url)}: not http(s)`)
      const what = describe('POST', url)
      const response = await transport.send({
        method: 'POST',
        url,
        headers: { 'user-agent': userAgent, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
        ...(signal ? { signal } : {}),
      })
      return readTokenAnswer(response, what, maxAnswerBytes)
    },
    close: async () => {
      if (options.source === undefined) await transport.close()
    },
  }
}
