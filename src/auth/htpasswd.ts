// The htpasswd format as `htpasswd -B` writes it: one `name:hash` per line. Only bcrypt hashes
// ($2y$, $2a$, $2b$) are accepted: the MD5 ($apr1$), SHA1 ({SHA}) and crypt variants are too weak
// to keep, and silently skipping an entry would lock its user out without saying why.

export interface HtpasswdEntry {
  name: string
  hash: string
}

export class HtpasswdError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message)
    this.name = 'HtpasswdError'
  }
}

const bcryptHash = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/

/** Parses a whole file; throws HtpasswdError naming the first bad line (the line number, never its hash). */
export function parseHtpasswd(text: string): HtpasswdEntry[] {
  const entries: HtpasswdEntry[] = []
  const seen = new Set<string>()
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    const number = i + 1
    if (line === '' || line.startsWith('#')) return
    const colon = line.indexOf(':')
    if (colon <= 0) throw new HtpasswdError(`line ${number}: expected "name:hash"`, number)
    const name = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    if (/\s/.test(name)) throw new HtpasswdError(`line ${number}: a user name cannot contain spaces`, number)
    if (!bcryptHash.test(hash)) {
      throw new HtpasswdError(`line ${number}: user "${name}" does not have a bcrypt hash; only bcrypt is supported (htpasswd -B)`, number)
    }
    if (seen.has(name)) throw new HtpasswdError(`line ${number}: user "${name}" appears twice`, number)
    seen.add(name)
    entries.push({ name, hash })
  })
  return entries
}
