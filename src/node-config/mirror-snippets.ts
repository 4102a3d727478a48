// The same mirror setting in the formats other node tools read: the CRI plugin's registry.mirrors
// of older containerd configs, the registryMirrors block of an Anthos/bare-metal cluster config,
// and OpenShift's mirror sets (CRI-O), with the CA ConfigMap OpenShift trusts registries by.
import { stringify } from 'yaml'
import { tomlString } from './hosts-toml.js'
import { mirrorUrl, type MirrorPlan } from './mirror-plan.js'

/** `[plugins."io.containerd.grpc.v1.cri".registry.mirrors]` for containerd config.toml version 2. */
export function criMirrorsToml(plan: MirrorPlan): string {
  const lines = [
    '# /etc/containerd/config.toml (version = 2), for containerd without registry.config_path; restart containerd after.',
    '# containerd refuses registry.mirrors together with config_path: use one or the other.',
  ]
  for (const registry of plan.registries) {
    // The CRI plugin uses an endpoint's path as written (adding /v2 only to an empty one), and
    // tries the endpoints in order: Ferry, then the registry itself.
    lines.push(`[plugins."io.containerd.grpc.v1.cri".registry.mirrors.${tomlString(registry.host)}]`)
    lines.push(`  endpoint = [${tomlString(mirrorUrl(plan))}, ${tomlString(registry.server)}]`)
  }
  if (plan.ca !== undefined) {
    lines.push(`[plugins."io.containerd.grpc.v1.cri".registry.configs.${tomlString(plan.authority)}.tls]`)
    lines.push(`  ca_file = ${tomlString(plan.ca.path)}`)
  }
  return `${lines.join('\n')}\n`
}

/** The `registryMirrors` section of an Anthos clusters on bare metal (bmctl) cluster config file. */
export function anthosRegistryMirrors(plan: MirrorPlan): string {
  const mirror = {
    endpoint: mirrorUrl(plan),
    ...(plan.ca === undefined ? {} : { caCertPath: plan.ca.path }),
    ...(plan.pullCredentialConfigPath === undefined ? {} : { pullCredentialConfigPath: plan.pullCredentialConfigPath }),
    hosts: plan.registries.map((r) => r.host),
  }
  const header = [
    '# Anthos clusters on bare metal: the registryMirrors section of the cluster config file (bmctl),',
    '# next to gcrKeyPath. caCertPath and pullCredentialConfigPath are read on the admin workstation.',
  ]
  if (plan.pullCredentialConfigPath === undefined) {
    header.push('# Ferry with accounts: add pullCredentialConfigPath, a Docker config.json holding a robot account (ferry robot create).')
  }
  return `${header.join('\n')}\n${stringify({ registryMirrors: [mirror] })}`
}

/**
 * OpenShift 4.13+ ImageDigestMirrorSet and ImageTagMirrorSet. CRI-O sends no `?ns=`, so each
 * registry is reached through the path prefix of its Ferry upstream (`ferry:5000/gcr.io/...`);
 * a namespace serves one upstream only, so it is not used here.
 */
export function openshiftMirrorSets(plan: MirrorPlan): string {
  const routed = plan.registries.filter((r) => r.upstreamName !== undefined)
  const skipped = plan.registries.filter((r) => r.upstreamName === undefined)
  const mirrors = routed.map((r) => ({
    source: r.host,
    mirrors: [`${plan.authority}/${r.upstreamName}`],
    // The registry stays the fallback, as in hosts.toml.
    mirrorSourcePolicy: 'AllowContactingSource',
  }))
  const header = [
    '# OpenShift: mirror sets (oc apply -f). Tags through a mirror (ImageTagMirrorSet) are resolved by Ferry,',
    '# which revalidates them with the registry. Ferry credentials go into the global pull secret',
    '# (oc set data secret/pull-secret -n openshift-config --from-file=.dockerconfigjson=...).',
    ...skipped.map((r) => `# ${r.host}: no Ferry upstream serves it (pass --config with Ferry's config to name it); not mirrored here.`),
  ]
  const documents: unknown[] = [
    {
      apiVersion: 'config.openshift.io/v1',
      kind: 'ImageDigestMirrorSet',
      metadata: { name: 'ferry' },
      spec: { imageDigestMirrors: mirrors },
    },
    { apiVersion: 'config.openshift.io/v1', kind: 'ImageTagMirrorSet', metadata: { name: 'ferry' }, spec: { imageTagMirrors: mirrors } },
  ]
  if (plan.ca !== undefined) {
    header.push(
      '# The CA: a ConfigMap in openshift-config keyed by host..port, then',
      `# oc patch image.config.openshift.io/cluster --type merge -p '{"spec":{"additionalTrustedCA":{"name":"ferry-ca"}}}'`,
    )
    documents.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ferry-ca', namespace: 'openshift-config' },
      data: { [plan.authority.replace(/:(\d+)$/, '..$1')]: plan.ca.pem },
    })
  } else if (!plan.tls) {
    header.push(`# Plain HTTP: list ${plan.authority} in image.config.openshift.io/cluster spec.registrySources.insecureRegistries.`)
  }
  return `${header.join('\n')}\n${documents.map((d) => stringify(d)).join('---\n')}`
}
