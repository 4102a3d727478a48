// Docker token scopes: `repository:<name>:<actions>` and `registry:catalog:*`. The name sits
// between the first and the last colon (it may hold a `host:port`); a resource class in the
// type (`repository(plugin)`) is ignored.
import type { Action } from '../core/auth.js'

export interface ScopeRequest {
  type: 'repository' | 'registry'
  name: string
  actions: string[]
}

const knownActions: readonly Action[] = ['pull', 'push', 'delete']

/** undefined for a malformed scope or an unknown resource type (which the token service skips). */
export function parseScope(text: string): ScopeRequest | undefined {
  const first = text.indexOf(':')
  const last = text.lastIndexOf(':')
  if (first <= 0 || last <= first + 1) return undefined
  const type = text.slice(0, first).replace(/\(.*\)$/, '')
  if (type !== 'repository' && type !== 'registry') return undefined
  const name = text.slice(first + 1, last)
  const actions = text
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '')
  return { type, name, actions }
}

/** Repository actions a scope asks for: `*` stands for all of them; unknown ones are dropped. */
export function repositoryActions(actions: readonly string[]): Action[] {
  if (actions.includes('*')) return [...knownActions]
  return knownActions.filter((a) => actions.includes(a))
}
