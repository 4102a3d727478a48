// `ferry containerd-config`: the node side of a mirror. Writes certs.d/<registry>/hosts.toml (and
// the CA beside each) for containerd, and prints the same setting for the CRI plugin's older
// registry.mirrors, Anthos/bare-metal registryMirrors and OpenShift mirror sets. With Ferry's
// config it names each registry's upstream and warns about registries Ferry would not serve.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import type { Command } from 'commander'
import { loadConfig } from '../config/load.js'
import { hostsFiles } from '../node-config/hosts-toml.js'
import { anthosRegistryMirrors, criMirrorsToml, openshiftMirrorSets } from '../node-config/mirror-snippets.js'
import { NodeConfigError, mirrorPlan, type MirrorPlan } from '../node-config/mirror-plan.js'
import { PemError, parseCertificates } from '../tls/pem.js'
import { routeTable } from '../upstream/routing.js'
import { configFile } from './config-flags.js'
import { reportingConfigErrors, type CliIo } from './io.js'

interface Flags {
  endpoint: string
  namespace?: string
  ca?: string
  registries?: string
  output: string
  pullCredentialConfig?: string
  config?: string
}

const defaultRegistries = ['gcr.io', 'docker.io', 'registry.k8s.io']

export function addContainerdConfigCommand(program: Command, io: CliIo): void {
  program
    .command('containerd-config')
    .description(
      "write containerd's certs.d/<registry>/hosts.toml for pulling through Ferry, and print the CRI, Anthos and OpenShift equivalents",
    )
    .requiredOption('--endpoint <url>', "Ferry's base URL as nodes reach it, e.g. https://ferry.example:5000")
    .option('--namespace <path>', 'pull through this mirror namespace (mirror.namespaces), e.g. test-namespace')
    .option('--ca <file>', "PEM CA that signed Ferry's certificate; copied next to each hosts.toml")
    .option(
      '--registries <list>',
      `comma-separated registry hosts, each optionally =<server URL> (default: the upstreams of --config, else ${defaultRegistries.join(',')})`,
    )
    .option('--output <dir>', 'folder to write certs.d/ into (/etc/containerd on a node)', '.')
    .option('--pull-credential-config <file>', 'Docker config.json with Ferry credentials, for the Anthos block')
    .option('-c, --config <file>', "Ferry's config, to check the registries and namespace against (default: $FERRY_CONFIG)")
    .action(
      reportingConfigErrors(io, async (flags: Flags) => {
        try {
          await run(flags, io)
        } catch (err) {
          if (!(err instanceof NodeConfigError)) throw err
          io.stderr.write(`ferry: ${err.message}\n`)
          io.exit(2)
        }
      }),
    )
}

async function run(flags: Flags, io: CliIo): Promise<void> {
  const file = configFile(flags, io)
  const config = file === undefined ? undefined : await loadConfig({ file, env: io.env })
  const upstreams = config === undefined ? undefined : routeTable(config.mirror).upstreams
  const registries =
    flags.registries?.split(',').filter((r) => r.trim() !== '') ?? config?.mirror.upstreams.map(imageHost) ?? defaultRegistries
  const plan = mirrorPlan({
    endpoint: flags.endpoint,
    namespace: flags.namespace,
    registries,
    ca: flags.ca === undefined ? undefined : await readCa(flags.ca),
    pullCredentialConfigPath: flags.pullCredentialConfig === undefined ? undefined : resolve(flags.pullCredentialConfig),
    upstreams,
  })
  if (config !== undefined) warnAboutRouting(plan, config.mirror.namespaces, io)

  const written: string[] = []
  for (const { path, text } of hostsFiles(plan)) {
    const target = join(flags.output, path)
    try {
      await mkdir(dirname(target), { recursive: true })
      // containerd re-reads hosts.toml on every pull: it must never see half a file.
      await writeFile(`${target}.tmp`, text, { mode: 0o644 })
      await rename(`${target}.tmp`, target)
    } catch (err) {
      throw new NodeConfigError(`--output: cannot write ${target} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    written.push(target)
  }
  io.stderr.write(`wrote ${written.join(', ')}\n`)
  io.stdout.write(
    [
      `# ---- containerd 1.5+: hosts.toml written under ${join(flags.output, 'certs.d')} ----`,
      '# Point the CRI plugin at it: [plugins."io.containerd.grpc.v1.cri".registry] config_path = "/etc/containerd/certs.d"',
      '',
      '# ---- containerd CRI registry.mirrors (older config.toml) ----',
      criMirrorsToml(plan),
      '# ---- Anthos / bare-metal cluster config ----',
      anthosRegistryMirrors(plan),
      '# ---- OpenShift ----',
      openshiftMirrorSets(plan),
    ].join('\n'),
  )
}

// The host image references use for an upstream: its name when that is a host ("gcr.io"), else
// its first alias ("hub" with aliases [docker.io]), else its URL's host.
function imageHost(upstream: { name: string; url: string; aliases: readonly string[] }): string {
  return upstream.name.includes('.') ? upstream.name : (upstream.aliases[0] ?? new URL(upstream.url).host)
}

async function readCa(path: string): Promise<{ path: string; pem: string }> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (err) {
    throw new NodeConfigError(`--ca ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
  }
  try {
    parseCertificates(bytes, '--ca')
  } catch (err) {
    if (err instanceof PemError) throw new NodeConfigError(`--ca ${path}: ${err.message}`)
    throw err
  }
  return { path: resolve(path), pem: bytes.toString('utf8') }
}

// What Ferry would do with these requests: a registry no upstream answers gets 404 (containerd
// then falls back to the server), and an unknown namespace is read as part of the repository name.
function warnAboutRouting(plan: MirrorPlan, namespaces: ReadonlyArray<{ name: string }>, io: CliIo): void {
  for (const registry of plan.registries) {
    if (registry.upstreamName === undefined) {
      io.stderr.write(`warning: no upstream in Ferry's config answers ?ns=${registry.host}: pulls of ${registry.host} images skip Ferry\n`)
    }
  }
  if (plan.namespace !== undefined && !namespaces.some((n) => n.name === plan.namespace)) {
    io.stderr.write(`warning: Ferry's config has no mirror.namespaces entry "${plan.namespace}": add one, or pulls through it fail\n`)
  }
}
