// The node configuration generator's pure parts: the plan's checks, and every format rendered from
// it. containerd reading the files for real is test/e2e/containerd-config.test.ts.
import t from 'tap'
import { parseAllDocuments, parse } from 'yaml'
import { caFileName, hostsFiles, hostsToml } from '../../src/node-config/hosts-toml.js'
import { anthosRegistryMirrors, criMirrorsToml, openshiftMirrorSets } from '../../src/node-config/mirror-snippets.js'
import { NodeConfigError, mirrorPlan, mirrorUrl } from '../../src/node-config/mirror-plan.js'

const ca = { path: '/etc/ferry/ca.crt', pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' }

t.test('the plan: servers per registry, the namespace as mirror path, flags that cannot work refused', async (t) => {
  const plan = mirrorPlan({
    endpoint: 'https://ferry.example:5000/',
    namespace: 'test-namespace',
    registries: ['gcr.io', 'docker.io', 'Registry.local:5001=http://10.0.0.9:5001/'],
  })
  t.equal(plan.origin, 'https://ferry.example:5000')
  t.equal(plan.authority, 'ferry.example:5000')
  t.equal(mirrorUrl(plan), 'https://ferry.example:5000/v2/test-namespace')
  t.same(
    plan.registries.map((r) => [r.host, r.server, r.upstreamName]),
    [
      ['gcr.io', 'https://gcr.io', 'gcr.io'],
      ['docker.io', 'https://registry-1.docker.io', 'docker.io'],
      ['registry.local:5001', 'http://10.0.0.9:5001', undefined],
    ],
  )
  t.equal(mirrorUrl(mirrorPlan({ endpoint: 'http://10.0.0.5:5000', registries: ['gcr.io'] })), 'http://10.0.0.5:5000')
  const upstreams = [{ name: 'hub', hosts: ['hub', 'registry-1.docker.io', 'docker.io'] }]
  t.equal(
    mirrorPlan({ endpoint: 'https://f:5000', registries: ['docker.io'], upstreams }).registries[0]?.upstreamName,
    'hub',
    'named by the config',
  )

  const refused = (input: Parameters<typeof mirrorPlan>[0], message: RegExp) =>
    t.throws(() => mirrorPlan(input), NodeConfigError) && t.throws(() => mirrorPlan(input), message)
  refused({ endpoint: 'ferry:5000', registries: ['gcr.io'] }, /--endpoint "ferry:5000"/)
  refused({ endpoint: 'https://ferry:5000/v2/test-namespace', registries: ['gcr.io'] }, /namespace goes in --namespace/)
  refused({ endpoint: 'http://ferry:5000', registries: ['gcr.io'], ca }, /--ca needs an https/)
  refused({ endpoint: 'https://ferry:5000', registries: ['../../etc'] }, /not a registry host/)
  refused({ endpoint: 'https://ferry:5000', registries: ['gcr.io', 'GCR.io'] }, /listed twice/)
  refused({ endpoint: 'https://ferry:5000', registries: [] }, /at least one registry/)
  refused({ endpoint: 'https://ferry:5000', namespace: 'Team A', registries: ['gcr.io'] }, /--namespace "Team A"/)
  refused({ endpoint: 'https://ferry:5000', registries: ['gcr.io=ftp://x'] }, /must be an http\(s\) base URL/)
})

t.test('hosts.toml: Ferry first for pull and resolve, the registry as server, override_path only with a namespace', async (t) => {
  const withNs = mirrorPlan({ endpoint: 'https://ferry.example:5000', namespace: 'test-namespace', registries: ['gcr.io'], ca })
  t.equal(
    hostsToml(withNs, withNs.registries[0]!),
    [
      '# gcr.io through Ferry; https://gcr.io when Ferry cannot answer.',
      'server = "https://gcr.io"',
      '',
      '[host."https://ferry.example:5000/v2/test-namespace"]',
      '  capabilities = ["pull", "resolve"]',
      '  override_path = true',
      `  ca = "${caFileName}"`,
      '',
    ].join('\n'),
  )
  const plain = mirrorPlan({ endpoint: 'http://ferry.example:5000', registries: ['docker.io'] })
  const text = hostsToml(plain, plain.registries[0]!)
  t.match(text, /^server = "https:\/\/registry-1\.docker\.io"$/m)
  t.match(text, /^\[host\."http:\/\/ferry\.example:5000"\]$/m)
  t.notMatch(text, /override_path|ca =/, 'no override_path without a namespace, no ca without TLS')
  t.same(
    hostsFiles(withNs).map((f) => f.path),
    ['certs.d/gcr.io/hosts.toml', `certs.d/gcr.io/${caFileName}`],
  )
  t.equal(hostsFiles(withNs)[1]?.text, ca.pem, 'the CA is copied next to the hosts.toml that names it')
})

t.test('the CRI registry.mirrors snippet: Ferry then the registry, the CA under the mirror host', async (t) => {
  const plan = mirrorPlan({ endpoint: 'https://ferry.example:5000', namespace: 'test-namespace', registries: ['gcr.io', 'docker.io'], ca })
  const text = criMirrorsToml(plan)
  t.match(
    text,
    '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."gcr.io"]\n  endpoint = ["https://ferry.example:5000/v2/test-namespace", "https://gcr.io"]',
  )
  t.match(text, '  endpoint = ["https://ferry.example:5000/v2/test-namespace", "https://registry-1.docker.io"]')
  t.match(text, '[plugins."io.containerd.grpc.v1.cri".registry.configs."ferry.example:5000".tls]\n  ca_file = "/etc/ferry/ca.crt"')
})

t.test('the Anthos registryMirrors block has endpoint, caCertPath, pullCredentialConfigPath and hosts', async (t) => {
  const plan = mirrorPlan({
    endpoint: 'https://10.200.0.2:5000',
    namespace: 'test-namespace',
    registries: ['gcr.io', 'registry.k8s.io'],
    ca,
    pullCredentialConfigPath: '/root/.docker/config.json',
  })
  t.same(parse(anthosRegistryMirrors(plan)), {
    registryMirrors: [
      {
        endpoint: 'https://10.200.0.2:5000/v2/test-namespace',
        caCertPath: '/etc/ferry/ca.crt',
        pullCredentialConfigPath: '/root/.docker/config.json',
        hosts: ['gcr.io', 'registry.k8s.io'],
      },
    ],
  })
  const bare = anthosRegistryMirrors(mirrorPlan({ endpoint: 'http://10.200.0.2:5000', registries: ['gcr.io'] }))
  t.same(parse(bare), { registryMirrors: [{ endpoint: 'http://10.200.0.2:5000', hosts: ['gcr.io'] }] })
  t.match(bare, /# Ferry with accounts: add pullCredentialConfigPath/)
})

t.test('OpenShift: digest and tag mirror sets through upstream path prefixes, and the CA ConfigMap', async (t) => {
  const plan = mirrorPlan({
    endpoint: 'https://ferry.example:5000',
    namespace: 'test-namespace',
    registries: ['gcr.io', 'docker.io', 'registry.local:5001'],
    ca,
  })
  const text = openshiftMirrorSets(plan)
  const [digests, tags, configMap, ...rest] = parseAllDocuments(text).map((d) => d.toJS())
  t.same(rest, [])
  const expected = [
    { source: 'gcr.io', mirrors: ['ferry.example:5000/gcr.io'], mirrorSourcePolicy: 'AllowContactingSource' },
    { source: 'docker.io', mirrors: ['ferry.example:5000/docker.io'], mirrorSourcePolicy: 'AllowContactingSource' },
  ]
  t.same(digests, {
    apiVersion: 'config.openshift.io/v1',
    kind: 'ImageDigestMirrorSet',
    metadata: { name: 'ferry' },
    spec: { imageDigestMirrors: expected },
  })
  t.same(tags, {
    apiVersion: 'config.openshift.io/v1',
    kind: 'ImageTagMirrorSet',
    metadata: { name: 'ferry' },
    spec: { imageTagMirrors: expected },
  })
  t.same(configMap.data, { 'ferry.example..5000': ca.pem }, 'keyed host..port, as image.config additionalTrustedCA wants')
  t.equal(configMap.metadata.namespace, 'openshift-config')
  t.match(text, /# registry\.local:5001: no Ferry upstream serves it/)
  t.match(openshiftMirrorSets(mirrorPlan({ endpoint: 'http://ferry:5000', registries: ['gcr.io'] })), /insecureRegistries/)
})
