import t from 'tap'
import { compareLexically, paginate, parsePage } from '../../src/core/pagination.js'

const items = ['TEST0', 'a', 'b', 'c', 'd'].sort(compareLexically)

t.test('pages in byte order with n and last', async (t) => {
  t.same(items, ['TEST0', 'a', 'b', 'c', 'd'])
  t.same(paginate(items, {}), { items })
  t.same(paginate(items, { n: 2 }), { items: ['TEST0', 'a'], next: 'a' })
  t.same(paginate(items, { n: 2, last: 'a' }), { items: ['b', 'c'], next: 'c' })
  t.same(paginate(items, { n: 2, last: 'c' }), { items: ['d'] })
  t.same(paginate(items, { last: 'b' }), { items: ['c', 'd'] })
  t.same(paginate(items, { last: 'bb' }), { items: ['c', 'd'] }, 'last need not exist')
  t.same(paginate(items, { n: 0 }), { items: [] }, 'n=0 is an empty page without a next link')
  t.same(paginate(items, { n: 5 }), { items }, 'an exactly full page has no next link')
})

t.test('parsePage validates n', async (t) => {
  t.same(parsePage({}), {})
  t.same(parsePage({ n: '3', last: 'x' }), { n: 3, last: 'x' })
  t.same(parsePage({ n: '99999999' }), { n: 10_000 })
  for (const n of ['-1', 'abc', '1.5']) {
    t.throws(() => parsePage({ n }), { name: 'RegistryError', code: 'PAGINATION_NUMBER_INVALID' })
  }
})
