// containerd's registry host configuration: `certs.d/<registry>/hosts.toml`, read by containerd
// 1.5+ (CRI `config_path`, `ctr --hosts-dir`) without a restart. Ferry is the one mirror host,
// tried first for pull and resolve; the registry stays the `server` containerd falls back to.
import { mirrorUrl, type MirrorPlan, type MirroredRegistry } from './mirror-plan.js'

/** The CA's file name next to each hosts.toml; containerd resolves a relative `ca` against that folder. */
export const caFileName = 'ferry-ca.crt'

export interface NodeFile {
  /** Relative to the output folder: `certs.d/gcr.io/hosts.toml`. */
  path: string
  text: string
}

/** Every file of the certs.d tree: a hosts.toml per registry, and the CA beside it when there is one. */
export function hostsFiles(plan: MirrorPlan): NodeFile[] {
  return plan.registries.flatMap((registry) => [
    { path: `certs.d/${registry.host}/hosts.toml`, text: hostsToml(plan, registry) },
    ...(plan.ca === undefined ? [] : [{ path: `certs.d/${registry.host}/${caFileName}`, text: plan.ca.pem }]),
  ])
}

export function hostsToml(plan: MirrorPlan, registry: MirroredRegistry): string {
  const lines = [
    `# ${registry.host} through Ferry; ${registry.server} when Ferry cannot answer.`,
    `server = ${tomlString(registry.server)}`,
    '',
    `[host.${tomlString(mirrorUrl(plan))}]`,
    // No push: pushes go to the registry itself, not to a mirror.
    '  capabilities = ["pull", "resolve"]',
  ]
  // Without it containerd appends /v2 to the path: /v2/<namespace>/v2/<repo>. Ferry accepts both,
  // but this is the shape every other client of the namespace uses.
  if (plan.namespace !== undefined) lines.push('  override_path = true')
  if (plan.ca !== undefined) lines.push(`  ca = ${tomlString(caFileName)}`)
  return `${lines.join('\n')}\n`
}

/** A TOML basic string: JSON's escapes are a subset TOML accepts. */
export function tomlString(value: string): string {
  return JSON.stringify(value)
}
