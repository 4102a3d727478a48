// Checks the dependency direction ARCHITECTURE.md asks for by reading import lines.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import t from 'tap'

const src = join(import.meta.dirname, '..', 'src')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry)
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : []
  })
}

const files = sourceFiles(src).map((path) => {
  const text = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('//'))
    .join('\n')
  const imports = [
    ...text.matchAll(/^(?:import|export)[^'"]*from\s+['"]([^'"]+)['"]/gm),
    ...text.matchAll(/import\(['"]([^'"]+)['"]\)/g),
  ].map((m) => m[1]!)
  return { file: relative(src, path), text, imports }
})

/** Specifiers imported for their values (not `import type`, not a type-only specifier list). */
function valueImports(file: string): string[] {
  const text = files.find((f) => f.file === file)!.text
  return [...text.matchAll(/^import (?!type )(\{[^}]*\}|[^'"]*) from\s+['"]([^'"]+)['"]/gm)]
    .filter(
      (m) =>
        !/^\{[^}]*\}$/.test(m[1]!) ||
        m[1]!
          .replace(/[{}\s]/g, '')
          .split(',')
          .some((name) => name !== '' && !name.startsWith('type')),
    )
    .map((m) => m[2]!)
}

function importsOf(prefix: string) {
  return files.filter((f) => f.file.startsWith(prefix))
}

t.test('core/ is pure: no I/O libraries, nothing else from src', async (t) => {
  for (const { file, text, imports } of importsOf('core/')) {
    for (const spec of imports) t.ok(spec.startsWith('./') || spec === 'node:crypto' || spec === 'node:stream', `${file} imports ${spec}`)
    // Stream types describe the contracts; no core module may create or consume a stream.
    t.notMatch(text, /^import \{[^}]*\} from 'node:stream'/m, `${file} imports node:stream values`)
  }
})

t.test('http/ never reaches storage, clients, upstreams, drivers, auth implementations or composition', async (t) => {
  for (const { file, imports } of importsOf('http/')) {
    for (const spec of imports) {
      // Auth reaches http as core/auth.ts interfaces through buildApp(deps).
      t.notMatch(spec, /(^|\/)(storage|client|upstream|proxy|auth|app)\//, `${file} imports ${spec}`)
      t.not(spec, 'undici', `${file} imports undici`)
    }
    // The blob sender is handed over by composition: http/ knows its type, never builds one.
    for (const spec of valueImports(file)) t.notMatch(spec, /(^|\/)transfer\//, `${file} imports values from ${spec}`)
  }
})

t.test('transfer/ (how blob bytes leave the process) depends on node, fastify and core/ only', async (t) => {
  for (const { file, imports } of importsOf('transfer/')) {
    for (const spec of imports) t.match(spec, /^(node:|fastify$|\.\/|\.\.\/core\/)/, `${file} imports ${spec}`)
  }
  // Producers of bodies (storage, proxy) may use transfer/'s contracts; nothing in core/ may.
  for (const { file, imports } of importsOf('core/')) {
    for (const spec of imports) t.notMatch(spec, /transfer\//, `${file} imports ${spec}`)
  }
})

// The modules whose classes are the implementations behind core's interfaces (and the functions
// that pick among them): only composition decides which one runs.
const implementations =
  /(^|\/)(storage\/driver\/(filesystem|memory|s3[^/]*)|storage\/local-registry|proxy\/mirror-registry|upstream\/registry-upstream|auth\/(credential-authenticator|role-authorizer|token-service)|transfer\/blob-sender)\.js$/

t.test('only app/ and cli/ choose implementations: drivers, registries, upstreams, authenticators, the blob sender', async (t) => {
  for (const { file } of files) {
    if (/^(app|cli)\//.test(file)) continue
    for (const spec of valueImports(file)) t.notMatch(spec, implementations, `${file} constructs ${spec}`)
  }
  for (const { file, imports } of files) {
    if (/^(app|cli)\//.test(file)) continue
    for (const spec of imports) t.notMatch(spec, /(^|\/)app\//, `${file} imports composition (${spec})`)
  }
})

t.test('proxy/ is handed a local registry and upstreams: it never reaches storage/', async (t) => {
  for (const { file, imports } of importsOf('proxy/')) {
    for (const spec of imports) t.notMatch(spec, /(^|\/)storage\//, `${file} imports ${spec}`)
  }
})

t.test('no module-level mutable state: two apps can be built in one process', async (t) => {
  // A bounded memo of a pure parse gives every app the same answers; nothing else is allowed.
  const allowed = new Set(['http/request-io.ts'])
  for (const { file, text } of files) {
    if (allowed.has(file) || file.startsWith('cli/')) continue
    t.notMatch(text, /^let /m, `${file} has a module-level let`)
    t.notMatch(text, /^(export )?const \w+ = new (Map|WeakMap|LRUCache)\b/m, `${file} has a module-level map`)
  }
})

t.test('undici only under client/, @aws-sdk only in the S3 driver', async (t) => {
  for (const { file, imports } of files) {
    if (imports.includes('undici')) t.match(file, /^client\//, `${file} imports undici`)
    if (imports.some((s) => s.startsWith('@aws-sdk/'))) t.match(file, /^storage\/driver\/s3/, `${file} imports @aws-sdk`)
  }
})

t.test('coordination/ reaches only core/, node, fastify, pino types and ioredis; ioredis only in its Redis leases', async (t) => {
  for (const { file, imports } of files) {
    if (imports.includes('ioredis')) t.equal(file, 'coordination/redis-leases.ts', `${file} imports ioredis`)
    if (!/^(app|cli|coordination)\//.test(file))
      for (const spec of imports) t.notMatch(spec, /(^|\/)coordination\//, `${file} imports ${spec}`)
  }
  for (const { file, imports } of importsOf('coordination/')) {
    for (const spec of imports) t.match(spec, /^(node:|fastify$|pino$|ioredis$|\.\/|\.\.\/core\/)/, `${file} imports ${spec}`)
  }
})

t.test('only main/server entry points and cli/ read process.env, argv or exit', async (t) => {
  for (const { file, text } of files) {
    if (file.startsWith('cli/')) continue
    t.notMatch(text, /process\.(env|argv|exit)\b/, `${file} touches process globals`)
  }
})

t.test('auth/ never reaches http, storage or the network', async (t) => {
  for (const { file, imports } of importsOf('auth/')) {
    for (const spec of imports)
      t.notMatch(spec, /(^|\/)(http|storage|client|upstream|proxy)\/|^(undici|fastify)$/, `${file} imports ${spec}`)
  }
})

t.test('the role vocabulary lives in core/auth.ts: auth/ never reads config/ (app/compose-auth.ts does)', async (t) => {
  for (const { file, imports } of importsOf('auth/')) {
    for (const spec of imports) t.notMatch(spec, /(^|\/)config\//, `${file} imports ${spec}`)
  }
})

t.test('http/ never reaches tls/; tls/ only reads files and talks to node:tls', async (t) => {
  for (const { file, imports } of importsOf('http/')) {
    for (const spec of imports) t.notMatch(spec, /(^|\/)tls\//, `${file} imports ${spec}: http/ is handed server options instead`)
  }
  for (const { file, imports } of importsOf('tls/')) {
    for (const spec of imports) t.match(spec, /^(node:|pino$|\.\/|\.\.\/(config|observability|reload)\/)/, `${file} imports ${spec}`)
  }
})

t.test('PEM is parsed in one place: tls/pem.ts, pure, for tls/ and upstream/', async (t) => {
  for (const { file, text } of [...importsOf('tls/'), ...importsOf('upstream/')]) {
    if (file === 'tls/pem.ts') continue
    t.notMatch(text, /new X509Certificate\(|createPrivateKey\(|BEGIN CERTIFICATE/, `${file} parses PEM itself`)
  }
  const pem = files.find((f) => f.file === 'tls/pem.ts')
  t.same(pem?.imports, ['node:crypto'], 'tls/pem.ts reads no files')
})

t.test('files that rotate are followed by reload/ alone: no fs.watch elsewhere', async (t) => {
  for (const { file, text } of files) {
    if (file.startsWith('reload/')) continue
    t.notMatch(text, /^import \{[^}]*\b(watch|watchFile)\b[^}]*\} from 'node:fs(\/promises)?'/m, `${file} watches files itself`)
  }
})

t.test('reload/ only watches files: node built-ins and nothing else from src', async (t) => {
  for (const { file, imports } of importsOf('reload/')) {
    for (const spec of imports) t.match(spec, /^(node:|\.\/)/, `${file} imports ${spec}`)
  }
})

t.test('credentials/ reads files and signs JWTs; its network exchanges come from client/ as a function', async (t) => {
  for (const { file, text, imports } of importsOf('credentials/')) {
    for (const spec of imports) {
      t.match(spec, /^(node:|jose$|\.\/|\.\.\/(core|reload)\/|\.\.\/client\/credentials\.js$)/, `${file} imports ${spec}`)
    }
    // client/credentials.js is shared for its types and the identity-token convention only.
    t.notMatch(text, /from '\.\.\/client\/(?!credentials\.js')/, `${file} reaches into client/`)
  }
})

// A cycle makes load order decide what is initialised, and says two files are one concern.
// Type-only imports count: they still tie the two files' designs together.
t.test('no import cycles in src/', async (t) => {
  const known = new Set(files.map((f) => f.file))
  const edges = new Map(
    files.map(({ file, imports }) => [
      file,
      imports
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => relative(src, join(src, dirname(file), spec)).replace(/\.js$/, '.ts'))
        .filter((target) => known.has(target)),
    ]),
  )
  const cycles: string[] = []
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    stack.push(file)
    for (const next of edges.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '))
      else if (state.get(next) === undefined) visit(next)
    }
    stack.pop()
    state.set(file, 'done')
  }
  for (const file of [...known].sort()) if (state.get(file) === undefined) visit(file)
  t.same(cycles, [], 'import cycles')
})

t.test('bundle/ reads archives and pushes through client/: no storage, http, upstreams or composition', async (t) => {
  for (const { file, imports } of importsOf('bundle/')) {
    for (const spec of imports) t.match(spec, /^(node:|tar-stream$|\.\/|\.\.\/(core|client)\/)/, `${file} imports ${spec}`)
  }
  // Only the CLI (and later composition) picks the sink a bundle goes to.
  for (const { file, imports } of files) {
    if (/^(app|cli|bundle)\//.test(file)) continue
    for (const spec of imports) t.notMatch(spec, /(^|\/)bundle\//, `${file} imports ${spec}`)
  }
})

t.test('node-config/ renders text from a plan: no I/O, nothing else from src; only cli/ uses it', async (t) => {
  for (const { file, imports } of importsOf('node-config/')) {
    for (const spec of imports) t.match(spec, /^(yaml$|\.\/)/, `${file} imports ${spec}`)
  }
  for (const { file, imports } of files) {
    if (/^(cli|node-config)\//.test(file)) continue
    for (const spec of imports) t.notMatch(spec, /(^|\/)node-config\//, `${file} imports ${spec}`)
  }
})
