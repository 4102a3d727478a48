import type { StorageDriver } from './driver/driver.js'
import { repositoriesRoot } from './paths.js'

export interface WalkedRepository {
  name: string
  /** The `_`-prefixed entries of the repository folder: `_manifests`, `_layers`, `_uploads`. */
  internals: string[]
}

/**
 * Visits every folder under `repositories/` that holds repository data, in lexical name order.
 * Children starting with `_` are repository internals; anything else is a deeper name component.
 */
export async function* walkRepositories(driver: StorageDriver, prefix = ''): AsyncGenerator<WalkedRepository> {
  const dir = prefix === '' ? repositoriesRoot : `${repositoriesRoot}/${prefix}`
  const children = await driver.list(dir)
  const internals = children.filter((child) => child.startsWith('_'))
  if (prefix !== '' && internals.length > 0) yield { name: prefix, internals }
  for (const child of children) {
    if (child.startsWith('_')) continue
    yield* walkRepositories(driver, prefix === '' ? child : `${prefix}/${child}`)
  }
}
