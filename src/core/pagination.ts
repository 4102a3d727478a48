import { RegistryError } from './errors.js'

/** `n` and `last` from a tags/list or _catalog query. */
export interface Page {
  n?: number
  last?: string
}

export interface PageResult {
  items: string[]
  /** Set when more items follow: the `last` to ask for next. */
  next?: string
}

/** Upper bound on one page, so a client cannot make us render an unbounded body in one go. */
export const maxPageSize = 10_000

export function parsePage(query: { n?: string; last?: string }): Page {
  const page: Page = {}
  if (query.n !== undefined && query.n !== '') {
    if (!/^\d+$/.test(query.n)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', 'n must be a non-negative integer', { n: query.n })
    }
    page.n = Math.min(Number(query.n), maxPageSize)
  }
  if (query.last !== undefined && query.last !== '') page.last = query.last
  return page
}

/**
 * Applies lexical pagination to sorted, distinct items: everything after `last`, at most `n`.
 * `n=0` yields an empty page, as the spec asks.
 */
export function paginate(sortedItems: readonly string[], page: Page): PageResult {
  let start = 0
  if (page.last !== undefined) {
    const last = page.last
    start = sortedItems.findIndex((item) => item > last)
    if (start < 0) start = sortedItems.length
  }
  const limit = page.n ?? sortedItems.length
  const items = sortedItems.slice(start, start + limit)
  const hasMore = page.n !== undefined && start + limit < sortedItems.length && items.length > 0
  return hasMore ? { items, next: items[items.length - 1]! } : { items }
}

/** Byte-wise lexical order, the order the spec's pagination is defined in. */
export function compareLexically(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
