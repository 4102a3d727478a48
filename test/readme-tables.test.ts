// The README's reference tables follow the code: every config key of the schema has a row in the
// settings table (keys inside list items are named in their list's row), every row names a real
// key, and every `ferry serve` flag is in the Running table. A key or flag added without its
// README row fails here.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Command } from 'commander'
import t from 'tap'
import { addConfigFlags } from '../src/cli/config-flags.js'
import { configSchema } from '../src/config/schema.js'

interface SchemaNode {
  type?: string
  properties?: Record<string, SchemaNode>
  items?: SchemaNode
}

/** Dotted paths of the schema's leaves; a list of mappings is `path[]`, its keys `path[].key`. */
function schemaPaths(node: SchemaNode, prefix = ''): string[] {
  if (node.type === 'object' && node.properties) {
    return Object.entries(node.properties).flatMap(([key, child]) => schemaPaths(child, prefix ? `${prefix}.${key}` : key))
  }
  if (node.type === 'array' && node.items?.type === 'object') return [`${prefix}[]`, ...schemaPaths(node.items, `${prefix}[]`)]
  return [prefix]
}

const readme = await readFile(join(import.meta.dirname, '..', 'README.md'), 'utf8')

/** The rows of the first table after `heading`, as [first cell, whole row]. */
function tableRows(heading: string): Array<[string, string]> {
  const start = readme.indexOf(`\n${heading}\n`)
  if (start < 0) throw new Error(`README.md has no "${heading}" section`)
  const lines = readme.slice(start).split('\n')
  const first = lines.findIndex((l) => l.startsWith('|'))
  const rows: Array<[string, string]> = []
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    rows.push([line.split('|')[1] ?? '', line])
  }
  return rows
}

const backticked = (text: string): string[] => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)

t.test('the settings table has a row for every config key, and no row for a key that does not exist', async (t) => {
  const paths = schemaPaths(configSchema as SchemaNode)
  const rows = tableRows('## Configuration')
  const documented = new Map<string, string>()
  for (const [cell, row] of rows) for (const key of backticked(cell)) documented.set(key, row)

  const topLevel = paths.filter((p) => !p.includes('[].'))
  t.same(
    topLevel.filter((p) => !documented.has(p)),
    [],
    'keys without a row in the README settings table',
  )
  const missingInListRows = paths
    .filter((p) => p.includes('[].'))
    .filter((p) => {
      const list = p.slice(0, p.indexOf('[]') + 2)
      const row = documented.get(list) ?? ''
      return p
        .slice(list.length + 1)
        .split(/[.[\]]+/)
        .some((part) => part !== '' && !new RegExp(`\\b${part}\\b`).test(row))
    })
  t.same(missingInListRows, [], 'keys of list items not named in their list’s row')
  t.same(
    [...documented.keys()].filter((key) => !paths.includes(key)),
    [],
    'rows naming keys the schema does not have',
  )
})

t.test('the Running table names every ferry serve flag', async (t) => {
  const flags = addConfigFlags(new Command('serve')).options.map((o) => o.long!)
  const row = tableRows('## Running').find(([cell]) => cell.includes('`ferry serve`'))?.[1] ?? ''
  t.same(
    flags.filter((flag) => !row.includes(`\`${flag}`)),
    [],
    'flags missing from the `ferry serve` row',
  )
})
