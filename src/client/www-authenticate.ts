// Parses WWW-Authenticate challenges (RFC 9110 §11.6.1). Registries send
// `Bearer realm="…",service="…",scope="repository:a/b:pull,push"`: values are quoted strings
// that may contain commas, so splitting on commas is not enough.

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`, … */
  scheme: string
  /** Parameter names lower-cased, values unquoted. */
  params: Record<string, string>
}

const tokenChars = /[!#$%&'*+.^_`|~0-9A-Za-z-]/

/** All challenges of one or more WWW-Authenticate header values, in order. Malformed tails are dropped. */
export function parseWwwAuthenticate(values: string | readonly string[] | undefined): Challenge[] {
  if (values === undefined) return []
  const list = typeof values === 'string' ? [values] : values
  return list.flatMap(parseOne)
}

function parseOne(header: string): Challenge[] {
  const challenges: Challenge[] = []
  let current: Challenge | undefined
  let i = 0
  const skip = (chars: string): void => {
    while (i < header.length && chars.includes(header[i]!)) i++
  }
  const readToken = (): string => {
    const start = i
    while (i < header.length && tokenChars.test(header[i]!)) i++
    return header.slice(start, i)
  }
  const readQuoted = (): string => {
    let value = ''
    i++ // opening quote
    while (i < header.length && header[i] !== '"') {
      if (header[i] === '\\' && i + 1 < header.length) i++
      value += header[i]
      i++
    }
    i++ // closing quote
    return value
  }

  while (i < header.length) {
    skip(' \t,')
    const token = readToken()
    if (token === '') break
    skip(' \t')
    if (header[i] === '=' && current !== undefined) {
      i++
      skip(' \t')
      current.params[token.toLowerCase()] = header[i] === '"' ? readQuoted() : readToken()
    } else if (header[i] === '=') {
      break // a parameter before any scheme: not a challenge we can use
    } else {
      current = { scheme: token.toLowerCase(), params: {} }
      challenges.push(current)
    }
  }
  return challenges
}
