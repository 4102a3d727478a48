// NO_PROXY matching as curl and Go read it (see src/client/no-proxy.ts for the grammar).
import t from 'tap'
import { NoProxy } from '../../src/client/no-proxy.js'

const bypasses = (list: string, url: string): boolean => new NoProxy(list).bypasses(new URL(url))

t.test('domains match themselves and their subdomains, with or without a leading dot', async (t) => {
  t.ok(bypasses('example.com', 'https://example.com/v2/'))
  t.ok(bypasses('example.com', 'https://registry.example.com/v2/'))
  t.notOk(bypasses('example.com', 'https://badexample.com/v2/'), 'not a mere suffix of the name')
  t.ok(bypasses('.example.com', 'https://example.com/'))
  t.ok(bypasses('.example.com', 'https://a.b.example.com/'))
  t.ok(bypasses('*.example.com', 'https://a.example.com/'))
  t.ok(bypasses('EXAMPLE.com.', 'https://Registry.Example.COM/'), 'case and a trailing dot do not matter')
})

t.test('lists, "*", empty entries and spaces', async (t) => {
  t.ok(bypasses('a.test, ,b.test', 'https://b.test/'))
  t.ok(bypasses('*', 'https://anything.example/'))
  t.ok(bypasses('a.test,*', 'http://10.1.2.3:5000/'))
  t.notOk(bypasses('', 'https://gcr.io/'))
  t.notOk(bypasses(' , ', 'https://gcr.io/'))
})

t.test('host:port limits an entry to one port (default ports included)', async (t) => {
  t.ok(bypasses('registry.local:5000', 'https://registry.local:5000/'))
  t.notOk(bypasses('registry.local:5000', 'https://registry.local/'))
  t.ok(bypasses('gcr.io:443', 'https://gcr.io/'))
  t.notOk(bypasses('gcr.io:443', 'http://gcr.io/'))
})

t.test('IP addresses and CIDR ranges, IPv4 and IPv6', async (t) => {
  t.ok(bypasses('127.0.0.1', 'http://127.0.0.1:5000/'))
  t.notOk(bypasses('127.0.0.1', 'http://127.0.0.2:5000/'))
  t.ok(bypasses('10.0.0.0/8', 'https://10.20.30.40/'))
  t.notOk(bypasses('10.0.0.0/8', 'https://11.0.0.1/'))
  t.ok(bypasses('::1', 'http://[::1]:5000/'))
  t.ok(bypasses('[::1]:5000', 'http://[::1]:5000/'))
  t.notOk(bypasses('[::1]:5000', 'http://[::1]:5001/'))
  t.ok(bypasses('fd00::/8', 'https://[fd12::1]/'))
  t.notOk(bypasses('10.0.0.0/8', 'https://ten.example/'), 'a range never matches a host name')
  t.notOk(bypasses('example.com', 'https://93.184.216.34/'), 'a name never matches an address')
})

t.test('loopback is not bypassed implicitly (curl, not Go)', async (t) => {
  t.notOk(bypasses('gcr.io', 'http://127.0.0.1:5000/'))
  t.notOk(bypasses('gcr.io', 'http://localhost:5000/'))
})
