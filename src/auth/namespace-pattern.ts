// Glob patterns over repository names, as role bindings and anonymousPull write them.
// Components are separated by "/"; a component "**" stands for any number of components (none
// included), and "*" inside a component for any characters but "/". So "team-a/**" covers
// "team-a" and everything below it, "team-a/*" only its direct children, "**" every name.

export type NamespaceMatcher = (repository: string) => boolean

export function compileNamespacePattern(pattern: string): NamespaceMatcher {
  // "a/**/**" means "a/**": collapse runs of "**" so the cases below stay few.
  const parts = pattern.split('/').filter((part, i, all) => !(part === '**' && all[i - 1] === '**'))
  let source = ''
  parts.forEach((part, i) => {
    const first = i === 0
    const last = i === parts.length - 1
    const afterDoubleStar = !first && parts[i - 1] === '**'
    if (part === '**') {
      if (first && last) source += '[^/]+(?:/[^/]+)*'
      else if (first) source += '(?:[^/]+/)*'
      else if (last) source += '(?:/[^/]+)*'
      else source += '/(?:[^/]+/)*'
      return
    }
    if (!first && !afterDoubleStar) source += '/'
    source += part.split('*').map(escapeRegExp).join('[^/]*')
  })
  const regex = new RegExp(`^${source}$`)
  return (repository) => regex.test(repository)
}

/** A matcher for any of `patterns`; matches nothing for an empty list. */
export function compileNamespacePatterns(patterns: readonly string[]): NamespaceMatcher {
  const matchers = patterns.map(compileNamespacePattern)
  return (repository) => matchers.some((m) => m(repository))
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
