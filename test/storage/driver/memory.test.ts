import t from 'tap'
import { MemoryDriver } from '../../../src/storage/driver/memory.js'
import { driverContract } from './driver-contract.js'

driverContract(t, async () => ({ driver: new MemoryDriver(), cleanup: async () => {} }))

t.test('drivers do not share state', async (t) => {
  const one = new MemoryDriver()
  await one.putContent('a', 'x')
  t.equal(await new MemoryDriver().stat('a'), undefined)
})
