// Small index objects listing names (a repository's tags, the referrers of a subject, the
// catalog's repositories), so that request paths never LIST an object store: one GET reads one,
// and its size scales with the names it holds, not with the keys in the bucket.
//
// Updates are read-modify-write, serialised per index within the process. Across replicas they
// are compare-and-swap where the store has conditional writes (If-Match / If-None-Match: *),
// retried on a conflict; on a store without them, two replicas adding to one index at the same
// moment can lose one name from the index (the files themselves stay right; see the README).
import type { RepositoryName } from '../core/reference.js'
import type { StorageDriver } from './driver/driver.js'
import type { KeyedLock } from './keyed-lock.js'
import { catalogIndexPath, repositoryMarkerPath } from './paths.js'

const attempts = 10

export class NameIndex {
  constructor(
    private readonly driver: StorageDriver,
    private readonly locks: KeyedLock,
  ) {}

  /** The names, sorted; [] when the index does not exist. */
  async read(path: string): Promise<string[]> {
    const content = await this.driver.getContent(path)
    return content === undefined ? [] : parse(content)
  }

  /** Adds `name`; no write when it is there already. */
  add(path: string, name: string): Promise<void> {
    return this.update(path, (names) => (names.has(name) ? false : (names.add(name), true)))
  }

  /** Removes `names`; no write when none is there. */
  remove(path: string, ...names: string[]): Promise<void> {
    return this.update(path, (set) => names.map((name) => set.delete(name)).some(Boolean))
  }

  private update(path: string, change: (names: Set<string>) => boolean): Promise<void> {
    return this.locks.run(`index:${path}`, async () => {
      const { getVersioned, putIfVersion } = this.driver
      if (getVersioned === undefined || putIfVersion === undefined) {
        const names = new Set(await this.read(path))
        if (change(names)) await this.driver.putContent(path, serialise(names))
        return
      }
      for (let attempt = 0; attempt < attempts; attempt++) {
        const current = await getVersioned.call(this.driver, path)
        const names = new Set(current === undefined ? [] : parse(current.content))
        if (!change(names)) return
        if (await putIfVersion.call(this.driver, path, serialise(names), current?.version)) return
      }
      throw new Error(`index ${path}: too many concurrent updates`)
    })
  }
}

function parse(content: Buffer): string[] {
  const names = JSON.parse(content.toString('utf8')) as unknown
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new Error('malformed name index')
  return names as string[]
}

function serialise(names: Set<string>): string {
  return JSON.stringify([...names].sort())
}

/** The index objects of one registry, where listing is costly. */
export class RegistryIndexes {
  readonly names: NameIndex
  readonly catalogPath: string
  /** Repositories this process has marked as existing / added to the catalog (once each). */
  readonly #marked = new Set<string>()
  readonly #catalogued = new Set<string>()

  constructor(
    private readonly driver: StorageDriver,
    locks: KeyedLock,
    storagePrefix: string,
  ) {
    this.names = new NameIndex(driver, locks)
    this.catalogPath = catalogIndexPath(storagePrefix)
  }

  async markRepository(name: RepositoryName): Promise<void> {
    if (this.#marked.has(name)) return
    await this.driver.putContent(repositoryMarkerPath(name), '')
    this.#marked.add(name)
  }

  async repositoryExists(name: RepositoryName): Promise<boolean> {
    return this.#marked.has(name) || (await this.driver.getContent(repositoryMarkerPath(name))) !== undefined
  }

  async catalogue(name: RepositoryName): Promise<void> {
    if (this.#catalogued.has(name)) return
    await this.markRepository(name)
    await this.names.add(this.catalogPath, name)
    this.#catalogued.add(name)
  }
}
