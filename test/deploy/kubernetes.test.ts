// deploy/kubernetes/ rendered by `kubectl kustomize` overlay by overlay, and every rendering checked
// against the server: the ConfigMap's ferry.yaml loads through Ferry's own config loader, and the
// port, probes, mounts, env, scrape settings and selectors agree with what that config makes Ferry do.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { envOverrides, type IgnoredEnv } from '../../src/config/env.js'
import { loadConfig } from '../../src/config/load.js'
import { configSchema, type Config } from '../../src/config/schema.js'
import { missingTools, run } from '../helpers/tools.js'

const root = join(import.meta.dirname, '..', '..', 'deploy', 'kubernetes')

// Loose shapes of the objects read here; a missing field shows up as a failed assertion.
/* eslint-disable @typescript-eslint/no-explicit-any */
type K8s = any

async function kustomizeUnavailable(): Promise<string | undefined> {
  if (missingTools('kubectl').length > 0) return 'needs kubectl with kustomize 4+ on PATH'
  const { stdout } = await run('kubectl', ['version', '--client'])
  const major = Number(/Kustomize Version: v(\d+)/.exec(stdout)?.[1] ?? 0)
  // Debian's kubernetes-client (1.20) bundles kustomize 2, which knows no components or labels.
  return major >= 4 ? undefined : `kubectl's kustomize is too old (${stdout.trim().split('\n').join(', ')}); needs 4+`
}

const why = await kustomizeUnavailable()
const overlays = (await readdir(join(root, 'overlays'))).sort()

t.test('there are overlays for the filesystem StatefulSet, the S3 Deployment and the ServiceMonitor', async (t) => {
  t.same(overlays, ['filesystem', 'filesystem-service-monitor', 's3'])
})

for (const overlay of overlays) {
  t.test(`overlays/${overlay} renders and agrees with the server`, { skip: why ?? false }, async (t) => {
    const { stdout } = await run('kubectl', ['kustomize', join(root, 'overlays', overlay)], { timeoutMs: 60_000 })
    const documents = parseAllDocuments(stdout).map((d) => {
      t.same(d.errors, [], 'valid YAML')
      return d.toJS() as K8s
    })
    for (const d of documents) t.ok(d.apiVersion && d.kind && d.metadata?.name, `${d.kind}/${d.metadata?.name} is a complete object`)
    const of = (kind: string): K8s[] => documents.filter((d) => d.kind === kind)

    // Ferry's own objects are named ferry; others (the S3 overlay's Redis) have names of their own.
    const workloads = documents.filter((d) => (d.kind === 'StatefulSet' || d.kind === 'Deployment') && d.metadata.name === 'ferry')
    t.equal(workloads.length, 1, 'one workload')
    const workload = workloads[0]
    const pod = workload.spec.template.spec
    const podLabels = workload.spec.template.metadata.labels
    const container = pod.containers[0]

    // The config, as the pod reads it: the file named by --config, from the mounted ConfigMap.
    t.equal(container.args[0], 'serve')
    t.equal(container.args[1], '--config')
    const configPath: string = container.args[2]
    const configMount = container.volumeMounts.find((m: K8s) => m.mountPath === dirname(configPath))
    const configVolume = pod.volumes.find((v: K8s) => v.name === configMount?.name)
    const configMap = of('ConfigMap').find((c) => c.metadata.name === configVolume?.configMap?.name)
    t.ok(configMap, `${configPath} comes from a ConfigMap of this overlay`)
    const key = configPath.slice(dirname(configPath).length + 1)
    const dir = await mkdtemp(join(tmpdir(), 'ferry-k8s-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, key), configMap.data[key])
    const literalEnv = Object.fromEntries((container.env ?? []).filter((e: K8s) => 'value' in e).map((e: K8s) => [e.name, e.value]))
    const config: Config = await loadConfig({ file: join(dir, key), env: literalEnv })

    const ignored: IgnoredEnv[] = []
    const envNames = (container.env ?? []).map((e: K8s) => e.name as string)
    envOverrides(configSchema, Object.fromEntries(envNames.map((n: string) => [n, 'x'])), [], (i) => ignored.push(i))
    t.same(ignored, [], 'every FERRY_* variable names a config key')
    for (const name of envNames) t.match(name, /^(FERRY_|AWS_|POD_IP$)/, `${name} is read by Ferry or the AWS SDK, or is the pod IP`)

    // Port: the container's, the Service's target, the probes' and the scrape settings.
    const port = container.ports.find((p: K8s) => p.containerPort === config.listen.port)
    t.ok(port, `the container exposes listen port ${config.listen.port}`)
    const scheme = config.tls.serving === undefined ? 'HTTP' : 'HTTPS'
    for (const [probe, path] of [
      ['readinessProbe', '/readyz'],
      ['livenessProbe', '/healthz'],
    ] as const) {
      t.same(container[probe].httpGet, { path, port: port?.name, scheme }, `${probe}: ${path} over ${scheme}`)
    }
    const service = of('Service').find((s) => s.metadata.name === 'ferry')
    const servicePort = service.spec.ports.find((p: K8s) => p.targetPort === port?.name)
    t.ok(servicePort, 'the Service targets the named port')
    t.same(service.spec.selector, podLabels, 'the Service selects the pods')
    t.equal(pod.enableServiceLinks, false, 'no FERRY_* service-link variables from the Service named ferry')
    t.ok(pod.terminationGracePeriodSeconds * 1000 > config.http.shutdownTimeout, 'the grace period covers http.shutdownTimeout')

    // Every file Ferry reads or writes is on a mount; Secrets and ConfigMaps as folders, so rotation reaches the pod.
    const mounted = (path: string): K8s | undefined =>
      container.volumeMounts
        .filter((m: K8s) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
        .sort((a: K8s, b: K8s) => b.mountPath.length - a.mountPath.length)[0]
    const files = [
      config.tls.serving?.cert,
      config.tls.serving?.key,
      config.auth.htpasswd,
      config.mirror.pullCredentialConfigPath,
      config.coordination.peer.caPath,
      ...config.mirror.upstreams.flatMap((u) => [u.gcrKeyPath, u.pullCredentialConfigPath, u.tls.caPath, u.tls.certPath, u.tls.keyPath]),
    ].filter((f): f is string => f !== undefined)
    for (const file of files) t.ok(mounted(file)?.readOnly, `${file} is on a read-only mount`)
    for (const m of container.volumeMounts) t.notOk(m.subPath, `${m.mountPath}: no subPath (it would never see an update)`)
    t.ok(
      pod.volumes.some((v: K8s) => v.secret?.secretName === 'ferry-upstream'),
      'upstream credentials have a Secret folder',
    )
    if (config.storage.driver === 'filesystem') {
      t.equal(workload.kind, 'StatefulSet')
      const data = mounted(config.storage.filesystem.path)
      t.equal(data?.mountPath, config.storage.filesystem.path, 'storage.filesystem.path is a mount of its own')
      t.ok(
        workload.spec.volumeClaimTemplates.some((c: K8s) => c.metadata.name === data?.name),
        'backed by the PersistentVolumeClaim',
      )
      t.equal(workload.spec.replicas, 1, 'one writer per volume')
    } else {
      t.equal(workload.kind, 'Deployment')
      t.ok(workload.spec.replicas > 1, 'several replicas share the bucket')
      t.equal(config.storage.s3.credentials, undefined, 'no keys in the ConfigMap: the SDK chain reads them from a Secret')
      // Cold fills shared through Redis: the URL from a Secret, each replica advertising its pod IP over the listener's scheme.
      const env = (name: string): K8s => container.env.find((e: K8s) => e.name === name)
      t.same(env('FERRY_COORDINATION_REDIS_URL')?.valueFrom, { secretKeyRef: { name: 'ferry-redis', key: 'url' } })
      t.same(env('POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } }, 'the pod IP from the downward API')
      t.equal(config.coordination.advertiseUrl, `${scheme.toLowerCase()}://$(POD_IP):${config.listen.port}`, 'advertised: the pod IP')
      if (config.tls.serving) t.ok(config.coordination.peer.serverName, 'peers check the certificate against a name it holds')
      const redis = of('Deployment').find((d) => d.metadata.name === 'ferry-redis')
      const redisPort = redis?.spec.template.spec.containers[0].ports[0].containerPort
      t.ok(
        of('Service').some((s) => s.metadata.name === 'ferry-redis' && s.spec.ports[0].port === redisPort),
        'a Redis Service',
      )
      const redisPolicy = of('NetworkPolicy').find((p) => p.metadata.name === 'ferry-redis')
      t.same(redisPolicy?.spec.ingress[0].from, [{ podSelector: { matchLabels: podLabels } }], "only Ferry's pods reach Redis")
    }
    t.equal(container.securityContext.readOnlyRootFilesystem, true)
    t.ok(mounted('/tmp'), 'a writable /tmp beside the read-only root')
    t.equal(pod.securityContext.runAsNonRoot, true)

    // The PodDisruptionBudget and NetworkPolicy select these pods; the policy opens the listen port.
    t.same(of('PodDisruptionBudget')[0]?.spec.selector.matchLabels, podLabels)
    const policy = of('NetworkPolicy').find((p) => p.metadata.name === 'ferry')
    t.same(policy.spec.podSelector.matchLabels, podLabels)
    t.same(
      policy.spec.ingress.flatMap((i: K8s) => i.ports.map((p: K8s) => p.port)),
      [config.listen.port],
    )

    // Metrics: a ServiceMonitor on the Service port, or the plain scrape annotations; never both.
    const [monitor] = of('ServiceMonitor')
    const annotations = workload.spec.template.metadata.annotations
    if (monitor) {
      t.equal(annotations, undefined, 'no scrape annotations next to a ServiceMonitor')
      t.same(monitor.spec.selector.matchLabels, service.metadata.labels)
      t.match(monitor.spec.endpoints[0], { port: servicePort?.name, path: '/metrics', scheme: scheme.toLowerCase() })
    } else {
      t.same(annotations, {
        'prometheus.io/scrape': 'true',
        'prometheus.io/scheme': scheme.toLowerCase(),
        'prometheus.io/port': String(config.listen.port),
        'prometheus.io/path': '/metrics',
      })
    }
  })
}
