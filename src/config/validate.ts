// Schema walking and the structural checks on the merged raw config. Unknown keys are found by
// our own walk rather than `additionalProperties` so the error can suggest the intended key, and
// sections are checked before leaves so `storage: 5` is reported at `storage`, not below it.
import { Kind, KindGuard, type TObject, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { ConfigIssue, closest, expectedGot } from './errors.js'
import { missingUnit } from './units.js'

export type PlainObject = Record<string, unknown>

export function isPlainObject(value: unknown): value is PlainObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The keys of a section schema, or undefined when `schema` is a leaf. */
export function sectionProperties(schema: TSchema): Record<string, TSchema> | undefined {
  return KindGuard.IsObject(schema) ? (schema as TObject).properties : undefined
}

/** TypeBox kinds a leaf accepts: 'String', 'Integer', 'Boolean', ... (literals by their JS type). */
export function leafKinds(schema: TSchema): Set<string> {
  if (KindGuard.IsUnion(schema)) return new Set(schema.anyOf.flatMap((s) => [...leafKinds(s)]))
  if (KindGuard.IsLiteral(schema)) {
    const kind = typeof schema.const
    return new Set([kind === 'string' ? 'String' : kind === 'number' ? 'Number' : 'Boolean'])
  }
  return new Set([String(schema[Kind])])
}

/** Every key path that holds a value (not a section), in schema order. */
export function leafPaths(schema: TSchema, prefix: string[] = []): string[][] {
  const properties = sectionProperties(schema)
  if (properties === undefined) return [prefix]
  return Object.entries(properties).flatMap(([key, child]) => leafPaths(child, [...prefix, key]))
}

/**
 * Checks that every section is a mapping and every key is known, replacing null sections (a
 * section whose keys are all commented out) with {} in place. Throws the first ConfigIssue.
 */
export function checkKeys(schema: TSchema, value: PlainObject, prefix: string[] = []): void {
  const properties = sectionProperties(schema) ?? {}
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, key]
    const childSchema = Object.hasOwn(properties, key) ? properties[key] : undefined
    if (childSchema === undefined) {
      const hint = closest(key, Object.keys(properties))
      const suggestion = hint === undefined ? '' : ` (did you mean ${[...prefix, hint].join('.')}?)`
      throw new ConfigIssue(path, `unknown key${suggestion}`)
    }
    if (KindGuard.IsArray(childSchema) && sectionProperties(childSchema.items) !== undefined && Array.isArray(child)) {
      // Lists of sections (mirror.upstreams): every item gets the same unknown-key check.
      child.forEach((item, i) => {
        if (isPlainObject(item)) checkKeys(childSchema.items, item, [...path, String(i)])
      })
      continue
    }
    if (sectionProperties(childSchema) === undefined) continue
    if (child === null) value[key] = {}
    else if (isPlainObject(child)) checkKeys(childSchema, child, path)
    else throw new ConfigIssue(path, expectedGot(String(childSchema.expected ?? 'a mapping'), child))
  }
}

/** Throws a ConfigIssue for the first value the schema rejects (run after defaults are applied). */
export function checkValues(schema: TSchema, value: unknown): void {
  for (const error of Value.Errors(schema, value)) {
    const path = error.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    const unit = error.schema.unit === 'duration' || error.schema.unit === 'size' ? missingUnit(error.schema.unit, error.value) : undefined
    if (unit !== undefined) throw new ConfigIssue(path, unit)
    const expected = typeof error.schema.expected === 'string' ? error.schema.expected : fallbackExpected(error.schema)
    throw new ConfigIssue(path, expectedGot(expected, error.value))
  }
}

function fallbackExpected(schema: TSchema): string {
  const kinds = [...leafKinds(schema)].map((k) => k.toLowerCase())
  return kinds.length > 0 ? `a value of type ${kinds.join(' or ')}` : 'a valid value'
}
