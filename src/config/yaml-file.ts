// Reading the YAML config file. The parsed document is kept so that later errors about a key
// can point at the line it is on.
import { readFile } from 'node:fs/promises'
import { LineCounter, isMap, isNode, isScalar, isSeq, parseDocument, type Document } from 'yaml'
import { ConfigError } from './errors.js'
import { isPlainObject, type PlainObject } from './validate.js'

export interface ConfigFile {
  file: string
  data: PlainObject
  /** 1-based line of the key or list item at `path` (the deepest part of it present in the file). */
  lineOf(path: readonly string[]): number | undefined
}

export async function readConfigFile(file: string): Promise<ConfigFile> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new ConfigError(`config error: cannot read ${file}: ${reason}`, { file }, { cause: err })
  }
  return parseConfigText(text, file)
}

export function parseConfigText(text: string, file: string): ConfigFile {
  const lines = new LineCounter()
  // uniqueKeys: a key given twice is almost always a merge mistake, not an intentional override.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  const [syntaxError] = doc.errors
  if (syntaxError !== undefined) {
    const { line, col } = lines.linePos(syntaxError.pos[0])
    const message = syntaxError.message.split('\n')[0] ?? syntaxError.code
    throw new ConfigError(`config error in ${file}:${line}:${col}: invalid YAML: ${message}`, { file, line })
  }
  const data: unknown = doc.toJS() ?? {}
  if (!isPlainObject(data)) {
    throw new ConfigError(`config error in ${file}: expected a mapping of keys at the top level`, { file, line: 1 })
  }
  return { file, data, lineOf: (path) => lineOf(doc, lines, path) }
}

function lineOf(doc: Document, lines: LineCounter, path: readonly string[]): number | undefined {
  let node: unknown = doc.contents
  let line: number | undefined
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key)
      if (pair === undefined || !isScalar(pair.key) || !pair.key.range) break
      line = lines.linePos(pair.key.range[0]).line
      node = pair.value
    } else if (isSeq(node) && /^\d+$/.test(key)) {
      // A list item is placed by its own first line (the "- " of a block list).
      const item = node.items[Number(key)]
      if (!isNode(item) || !item.range) break
      line = lines.linePos(item.range[0]).line
      node = item
    } else break
  }
  return line
}
