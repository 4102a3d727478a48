// Server-side import records, one small JSON file per import under `_imports/` at the storage
// root (beside `repositories/`, so never in the catalog): they outlive a restart, and every
// replica on the same storage sees them.
import type { ImportRecords, ImportStatus } from '../core/imports.js'
import type { StorageDriver } from './driver/driver.js'

const root = '_imports'
const idPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export class StoredImportRecords implements ImportRecords {
  readonly #driver: StorageDriver

  constructor(driver: StorageDriver) {
    this.#driver = driver
  }

  async save(status: ImportStatus): Promise<void> {
    await this.#driver.putContent(pathOf(status.id), JSON.stringify(status))
  }

  async load(id: string): Promise<ImportStatus | undefined> {
    const bytes = await this.#driver.getContent(pathOf(id))
    if (bytes === undefined) return undefined
    try {
      return JSON.parse(bytes.toString('utf8')) as ImportStatus
    } catch {
      // A record cut short cannot be told apart from none.
      return undefined
    }
  }

  async list(): Promise<ImportStatus[]> {
    const names = await this.#driver.list(root)
    const ids = names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -'.json'.length))
    const records = await Promise.all(ids.filter((id) => idPattern.test(id)).map((id) => this.load(id)))
    return records.filter((record) => record !== undefined)
  }

  async delete(id: string): Promise<void> {
    await this.#driver.delete(pathOf(id))
  }
}

function pathOf(id: string): string {
  if (!idPattern.test(id)) throw new Error(`invalid import id: ${JSON.stringify(id.slice(0, 100))}`)
  return `${root}/${id}.json`
}
