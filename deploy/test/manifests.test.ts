// Offline checks of deploy/: every Kustomize overlay renders (kubectl kustomize), every object validates
// against the Kubernetes schemas (kubernetes-models), and policies that schemas cannot express hold. Names
// that must agree with the code (env vars, ports, NATS subjects) are checked against the code itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LIFECYCLE_TYPES, subjects } from '@live/contracts';
import { repoRoot, SERVICE_NODE_FLAGS } from '@live/testing';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parse, parseAllDocuments } from 'yaml';
import { chatConfigSchema } from '../../services/chat/src/config.js';
import { ingestConfigSchema } from '../../services/ingest/src/config.js';
import { packagerConfigSchema } from '../../services/packager/src/config.js';
import { supervisorConfigSchema } from '../../services/supervisor/src/config.js';
import { transcoderConfigSchema } from '../../services/transcoder/src/config.js';
import { webConfigSchema } from '../../services/web/src/config.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects, checked field by field below
type K8sObject = any;

const OVERLAYS = ['gke', 'dev'];
const SCHEMAS = {
  ingest: ingestConfigSchema,
  transcoder: transcoderConfigSchema,
  packager: packagerConfigSchema,
  supervisor: supervisorConfigSchema,
  chat: chatConfigSchema,
  web: webConfigSchema,
} as const;
const MODELS: Record<string, new (o: K8sObject) => { validate(): void }> = {
  Deployment,
  Service,
  ServiceAccount,
  ConfigMap,
  Namespace,
  PodDisruptionBudget,
  HorizontalPodAutoscaler,
  Ingress,
};
/** Custom resources with no schema here; their shape is checked by the policies below. */
const CUSTOM_KINDS = new Set(['PodMonitoring', 'BackendConfig', 'ManagedCertificate']);

function render(overlay: string): K8sObject[] {
  const out = execFileSync('kubectl', ['kustomize', join(repoRoot, 'deploy/k8s/overlays', overlay)], {
    encoding: 'utf8',
  });
  return parseAllDocuments(out).map((d) => d.toJSON());
}

const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, render(o)]));
const deployments = (objects: K8sObject[]) => objects.filter((o) => o.kind === 'Deployment');
const find = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
const serviceOf = (d: K8sObject) => d.metadata.name as keyof typeof SCHEMAS;

/** The environment a container gets: ConfigMaps (envFrom) and env entries. */
function containerEnv(objects: K8sObject[], container: K8sObject): Map<string, K8sObject> {
  const env = new Map<string, K8sObject>();
  for (const from of container.envFrom ?? []) {
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === from.configMapRef?.name);
    assert.ok(cm, `ConfigMap ${from.configMapRef?.name} exists`);
    for (const [k, v] of Object.entries(cm.data ?? {})) env.set(k, v);
  }
  for (const e of container.env ?? []) env.set(e.name, e.value ?? e.valueFrom);
  return env;
}

test('every overlay renders and every object validates against the Kubernetes schemas', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    assert.ok(objects.length > 10, `${overlay} renders`);
    for (const o of objects) {
      if (CUSTOM_KINDS.has(o.kind)) continue;
      const Model = MODELS[o.kind];
      assert.ok(Model, `${overlay}: a schema for ${o.kind}`);
      assert.doesNotThrow(() => new Model(o).validate(), `${overlay}: ${o.kind}/${o.metadata.name} is valid`);
    }
  }
});

test('every container: requests, memory limit, meaningful probes, non-root, read-only, pinned image', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    for (const d of deployments(objects)) {
      const pod = d.spec.template.spec;
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${overlay}/${d.metadata.name}: runAsNonRoot`);
      assert.ok(pod.topologySpreadConstraints?.length, `${d.metadata.name}: spread across zones`);
      for (const c of pod.containers) {
        const where = `${overlay}/${d.metadata.name}/${c.name}`;
        assert.ok(c.resources?.requests?.cpu && c.resources?.requests?.memory, `${where}: requests`);
        // Memory is limited; CPU deliberately is not (throttling an encoder is a stall, see the manifests).
        assert.ok(c.resources?.limits?.memory, `${where}: memory limit`);
        assert.equal(c.livenessProbe?.httpGet?.path, '/healthz', `${where}: liveness on /healthz`);
        assert.equal(c.readinessProbe?.httpGet?.path, '/readyz', `${where}: readiness on /readyz`);
        assert.ok(c.startupProbe?.httpGet, `${where}: startup probe`);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${where}: no privilege escalation`);
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${where}: no capabilities`);
        assert.match(c.image, /^.+\/[^/:]+:(?!latest$)[\w.-]+$/, `${where}: image tagged by the overlay`);
      }
    }
  }
});

test('every Deployment has a PodDisruptionBudget selecting it; replicated roles keep one alive', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget');
    for (const d of deployments(objects)) {
      const labels = d.spec.template.metadata.labels;
      const pdb = pdbs.find((p) => {
        const selector = Object.entries(p.spec.selector?.matchLabels ?? {});
        // An empty selector would cover every pod of the namespace: not a budget for this Deployment.
        return selector.length > 0 && selector.every(([k, v]) => labels[k] === v);
      });
      assert.ok(pdb, `${overlay}: a PDB for ${d.metadata.name}`);
      // Lease-holding roles: two replicas in production, and a disruption never takes the last one.
      if (['supervisor', 'packager'].includes(d.metadata.name)) {
        assert.equal(pdb.spec.minAvailable, 1, `${overlay}: ${d.metadata.name} keeps one replica`);
        if (overlay === 'gke') assert.ok(d.spec.replicas >= 2, `${d.metadata.name}: 2+ replicas on GKE`);
      }
      // Chat: a disruption moves one pod's clients at a time, and there is always another pod to take them.
      if (d.metadata.name === 'chat') {
        assert.equal(pdb.spec.maxUnavailable, 1, `${overlay}: chat pods leave one at a time`);
        if (overlay === 'gke') assert.ok(d.spec.replicas >= 2, 'chat: 2+ replicas on GKE');
      }
    }
  }
});

test("the transcoder's grace period covers the make-before-break drain; its preStop drains", () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const d = deployments(objects).find((x) => x.metadata.name === 'transcoder');
    const c = d.spec.template.spec.containers[0];
    const drainMs = Number(containerEnv(objects, c).get('TRANSCODER_DRAIN_TIMEOUT_MS'));
    assert.ok(drainMs > 0, 'TRANSCODER_DRAIN_TIMEOUT_MS is set');
    const graceMs = d.spec.template.spec.terminationGracePeriodSeconds * 1000;
    // The preStop drain, then SIGTERM's shutdown (flush, unregister): 5 s of margin at least.
    assert.ok(graceMs >= drainMs + 5000, `${overlay}: grace ${graceMs} ms covers drain ${drainMs} ms`);
    assert.equal(c.lifecycle?.preStop?.httpGet?.path, '/drain');
    assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a new worker is up before one drains');
  }
});

test("chat's grace period covers the preStop wait and the spread reconnect; rolling updates keep capacity", () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const d = find(objects, 'Deployment', 'chat');
    const c = d.spec.template.spec.containers[0];
    const spreadMs = Number(containerEnv(objects, c).get('CHAT_SHUTDOWN_SPREAD_MS'));
    assert.ok(spreadMs > 0, 'CHAT_SHUTDOWN_SPREAD_MS is set');
    const preStopMs = (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
    assert.ok(preStopMs > 0, `${overlay}: a preStop wait while the endpoints and the NEG let go of the pod`);
    // After the preStop wait, SIGTERM: the draining report (<= 2 s), clients told to reconnect over the spread
    // and cut off 2 s after it (the service gives that step spread + 5 s), then NATS and HTTP close (5 s).
    const graceMs = d.spec.template.spec.terminationGracePeriodSeconds * 1000;
    const needed = preStopMs + 2000 + spreadMs + 5000 + 5000;
    assert.ok(graceMs >= needed, `${overlay}: chat grace ${graceMs} ms covers ${needed} ms`);
    assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, 'a new chat pod is ready before one goes');
  }
});

test('chat: readiness is the load-aware /readyz on the chat port; liveness on the ops port', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const d = find(objects, 'Deployment', 'chat');
    const c = d.spec.template.spec.containers[0];
    const env = containerEnv(objects, c);
    const portNumber = (port: string | number) =>
      typeof port === 'number' ? port : c.ports.find((p: K8sObject) => p.name === port)?.containerPort;
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(
      String(portNumber(c.readinessProbe.httpGet.port)),
      env.get('CHAT_PORT'),
      `${overlay}: chat port`,
    );
    assert.equal(
      String(portNumber(c.livenessProbe.httpGet.port)),
      env.get('CHAT_OPS_PORT'),
      'liveness on ops',
    );
    assert.equal(String(portNumber(c.startupProbe.httpGet.port)), env.get('CHAT_OPS_PORT'), 'startup on ops');
    // Tokens come from the site (or the operator endpoint), never from guest mode, and the key from a Secret.
    assert.equal(env.get('CHAT_GUEST_TOKENS'), 'false', `${overlay}: no guest tokens`);
    assert.deepEqual(env.get('CHAT_TOKEN_SECRET')?.secretKeyRef, { name: 'chat-token', key: 'secret' });
    // The Service reaches the WebSocket port by name.
    const svc = find(objects, 'Service', 'chat');
    assert.equal(svc.spec.type, 'ClusterIP');
    const http = svc.spec.ports.find((p: K8sObject) => p.name === 'http');
    assert.equal(
      String(portNumber(http?.targetPort)),
      env.get('CHAT_PORT'),
      `${overlay}: Service targets chat`,
    );
    const selector = Object.entries(svc.spec.selector ?? {});
    const labels = d.spec.template.metadata.labels;
    assert.ok(
      selector.length > 0 && selector.every(([k, v]) => labels[k] === v),
      'Service selects chat pods',
    );
  }
});

test('web: studio and ops need the admin token from a Secret, no guest chat, HLS from the CDN on GKE', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const d = find(objects, 'Deployment', 'web');
    const env = containerEnv(objects, d.spec.template.spec.containers[0]);
    assert.equal(env.get('WEB_AUTH'), 'token', `${overlay}: admin APIs protected`);
    assert.deepEqual(env.get('WEB_ADMIN_TOKEN')?.secretKeyRef, { name: 'web-admin', key: 'token' });
    assert.equal(env.get('WEB_GUEST_CHAT'), 'false', `${overlay}: no guest chat tokens`);
    assert.match(String(env.get('WEB_CHAT_URL')), /^wss?:\/\//, `${overlay}: pages know the chat`);
  }
  const gke = rendered.gke as K8sObject[];
  const env = containerEnv(gke, find(gke, 'Deployment', 'web').spec.template.spec.containers[0]);
  assert.match(String(env.get('WEB_HLS_BASE')), /^https:\/\//, 'GKE: pages read HLS from the CDN');
  assert.equal(env.get('WEB_HLS_UPSTREAM'), undefined, 'GKE: no HLS proxy through the web pods');
  assert.match(String(env.get('WEB_CHAT_URL')), /^wss:\/\//, 'GKE: chat over TLS');
  const ingress = find(gke, 'Ingress', 'chat');
  const paths = ingress.spec.rules.flatMap((r: K8sObject) => r.http.paths);
  assert.ok(
    paths.some((p: K8sObject) => p.path === '/' && p.backend.service?.name === 'web'),
    'the pages behind the Ingress',
  );
  const named = JSON.parse(
    find(gke, 'Service', 'web').metadata.annotations['cloud.google.com/backend-config'],
  );
  const bc = find(gke, 'BackendConfig', named.default);
  assert.ok(bc.spec.timeoutSec >= 3600, 'event streams are not cut after 30 s');
});

test('LL-HLS: the worker part server is reachable by pod IP on a fixed port; packager and worker agree', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    const worker = find(objects, 'Deployment', 'transcoder').spec.template.spec.containers[0];
    const packager = find(objects, 'Deployment', 'packager').spec.template.spec.containers[0];
    const workerEnv = containerEnv(objects, worker);
    const packagerEnv = containerEnv(objects, packager);
    // The value each service runs with: the manifest's, else the schema's default.
    const workerValue = (name: keyof typeof transcoderConfigSchema.shape) =>
      transcoderConfigSchema.shape[name].parse(workerEnv.get(name));
    const packagerValue = (name: keyof typeof packagerConfigSchema.shape) =>
      packagerConfigSchema.shape[name].parse(packagerEnv.get(name));
    // Part events carry the worker's pod IP; the part server listens on it, on a port other pods can use.
    assert.deepEqual(workerEnv.get('TRANSCODER_PARTS_HOST')?.fieldRef, { fieldPath: 'status.podIP' });
    assert.equal(workerValue('TRANSCODER_PARTS_BIND'), '0.0.0.0', `${overlay}: parts on every interface`);
    const partsPort = Number(workerValue('TRANSCODER_PARTS_PORT'));
    assert.ok(partsPort > 0, `${overlay}: a fixed part-server port (0 would be a random one)`);
    const ports = worker.ports.map((p: K8sObject) => p.containerPort);
    assert.equal(new Set(ports).size, ports.length, `${overlay}: worker ports are distinct`);
    // PART-TARGET and TARGETDURATION describe what the worker cuts.
    assert.equal(packagerValue('PACKAGER_LL_PART_MS'), workerValue('TRANSCODER_PART_MS'), `${overlay}: part`);
    assert.equal(
      packagerValue('PACKAGER_LL_TARGET_SECONDS'),
      workerValue('TRANSCODER_SEGMENT_SECONDS'),
      `${overlay}: LL-HLS target duration is the segment duration`,
    );
    // Cluster-internal: no Service reaches a worker (a part exists only on the worker that cut it).
    const labels = find(objects, 'Deployment', 'transcoder').spec.template.metadata.labels;
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      const selector = Object.entries(svc.spec.selector ?? {});
      const selectsWorkers = selector.length > 0 && selector.every(([k, v]) => labels[k] === v);
      assert.ok(!selectsWorkers, `${overlay}: Service ${svc.metadata.name} does not reach the workers`);
    }
  }
});

/** GKE BackendConfig spec fields (cloud.google.com/v1, kubernetes/ingress-gce pkg/apis/backendconfig/v1). */
const BACKEND_CONFIG_FIELDS = [
  'iap',
  'cdn',
  'securityPolicy',
  'timeoutSec',
  'connectionDraining',
  'sessionAffinity',
  'customRequestHeaders',
  'customResponseHeaders',
  'healthCheck',
  'logging',
];
const CDN_FIELDS = [
  'enabled',
  'bypassCacheOnRequestHeaders',
  'cachePolicy',
  'cacheMode',
  'clientTtl',
  'defaultTtl',
  'maxTtl',
  'negativeCaching',
  'negativeCachingPolicy',
  'requestCoalescing',
  'serveWhileStale',
  'signedUrlCacheMaxAgeSec',
  'signedUrlKeys',
];
const CACHE_KEY_FIELDS = [
  'includeHost',
  'includeProtocol',
  'includeQueryString',
  'queryStringBlacklist',
  'queryStringWhitelist',
];
const HEALTH_CHECK_FIELDS = [
  'checkIntervalSec',
  'timeoutSec',
  'healthyThreshold',
  'unhealthyThreshold',
  'type',
  'port',
  'requestPath',
];

test('GKE chat Ingress: BackendConfig keeps WebSockets a day and drains, health check is /readyz', () => {
  const objects = rendered.gke as K8sObject[];
  const svc = find(objects, 'Service', 'chat');
  const annotations = svc.metadata.annotations ?? {};
  assert.deepEqual(JSON.parse(annotations['cloud.google.com/neg']), { ingress: true }, 'container-native LB');
  const named = JSON.parse(annotations['cloud.google.com/backend-config']);
  assert.deepEqual(Object.keys(named), ['default'], 'one BackendConfig for the Service');
  const bc = find(objects, 'BackendConfig', named.default);
  assert.ok(bc, `the BackendConfig ${named.default} the Service names exists`);
  assert.equal(bc.apiVersion, 'cloud.google.com/v1');
  assert.equal(bc.metadata.namespace, svc.metadata.namespace, 'in the Service namespace');
  for (const k of Object.keys(bc.spec))
    assert.ok(BACKEND_CONFIG_FIELDS.includes(k), `BackendConfig.spec.${k}`);
  for (const k of Object.keys(bc.spec.healthCheck))
    assert.ok(HEALTH_CHECK_FIELDS.includes(k), `healthCheck.${k}`);
  // The backend timeout is the longest a WebSocket lives on this load balancer (default 30 s).
  assert.ok(Number.isInteger(bc.spec.timeoutSec) && bc.spec.timeoutSec >= 3600, 'WebSockets live an hour+');
  const draining = bc.spec.connectionDraining?.drainingTimeoutSec;
  assert.ok(Number.isInteger(draining) && draining >= 600 && draining <= 3600, 'not-ready keeps connections');
  const d = find(objects, 'Deployment', 'chat');
  const c = d.spec.template.spec.containers[0];
  const chatPort = Number(containerEnv(objects, c).get('CHAT_PORT'));
  assert.equal(bc.spec.healthCheck.type, 'HTTP');
  assert.equal(bc.spec.healthCheck.requestPath, '/readyz', 'the load balancer admits like readiness');
  assert.equal(bc.spec.healthCheck.port, chatPort, 'health check on the chat port');
  // The Ingress: GKE's external load balancer, /chat to the chat Service's WebSocket port.
  const ingress = find(objects, 'Ingress', 'chat');
  assert.equal(ingress.metadata.annotations['kubernetes.io/ingress.class'], 'gce');
  const paths = ingress.spec.rules.flatMap((r: K8sObject) => r.http.paths);
  const chat = paths.find((p: K8sObject) => p.backend.service?.name === 'chat');
  assert.ok(chat && ['/chat', '/chat/'].includes(chat.path) && chat.pathType === 'Prefix', '/chat prefix');
  const port = chat.backend.service.port;
  assert.ok(
    svc.spec.ports.some((p: K8sObject) => p.name === port.name || p.port === port.number),
    'the Ingress names a port of the Service',
  );
  const cert = ingress.metadata.annotations['networking.gke.io/managed-certificates'];
  assert.ok(find(objects, 'ManagedCertificate', cert), `ManagedCertificate ${cert} exists (wss://)`);
  // Nothing GKE-specific in the dev overlay (no such kinds on a plain cluster).
  for (const o of rendered.dev as K8sObject[])
    assert.ok(
      !['BackendConfig', 'ManagedCertificate', 'PodMonitoring'].includes(o.kind),
      `dev: no ${o.kind}`,
    );
});

test('GKE BackendConfigs: only fields the GKE controller knows, each named by a Service', () => {
  const objects = rendered.gke as K8sObject[];
  const named = new Set(
    objects
      .filter((o) => o.kind === 'Service' && o.metadata.annotations?.['cloud.google.com/backend-config'])
      .map((o) => JSON.parse(o.metadata.annotations['cloud.google.com/backend-config']).default),
  );
  const configs = objects.filter((o) => o.kind === 'BackendConfig');
  assert.ok(configs.length >= 3, 'chat, web and packager-origin');
  for (const bc of configs) {
    const where = `BackendConfig ${bc.metadata.name}`;
    assert.equal(bc.apiVersion, 'cloud.google.com/v1', where);
    assert.ok(named.has(bc.metadata.name), `${where} is used by a Service`);
    for (const k of Object.keys(bc.spec)) assert.ok(BACKEND_CONFIG_FIELDS.includes(k), `${where}: spec.${k}`);
    for (const k of Object.keys(bc.spec.healthCheck ?? {}))
      assert.ok(HEALTH_CHECK_FIELDS.includes(k), `${where}: healthCheck.${k}`);
    for (const k of Object.keys(bc.spec.cdn ?? {})) assert.ok(CDN_FIELDS.includes(k), `${where}: cdn.${k}`);
    for (const k of Object.keys(bc.spec.cdn?.cachePolicy ?? {}))
      assert.ok(CACHE_KEY_FIELDS.includes(k), `${where}: cdn.cachePolicy.${k}`);
    assert.ok(Number.isInteger(bc.spec.timeoutSec) && bc.spec.timeoutSec > 0, `${where}: timeoutSec`);
  }
});

test('GKE LL-HLS: /ll on the Ingress to the packager origin, Cloud CDN keyed on the blocking-reload query', () => {
  const objects = rendered.gke as K8sObject[];
  const ingress = find(objects, 'Ingress', 'chat');
  const paths = ingress.spec.rules.flatMap((r: K8sObject) => r.http.paths);
  const ll = paths.find((p: K8sObject) => p.path === '/ll');
  assert.ok(ll && ll.pathType === 'Prefix', '/ll prefix on the Ingress');
  assert.equal(ll.backend.service.name, 'packager-origin');
  const svc = find(objects, 'Service', 'packager-origin');
  assert.ok(
    svc.spec.ports.some((p: K8sObject) => p.name === ll.backend.service.port.name),
    'the Ingress names a port of the Service',
  );
  assert.equal(svc.spec.sessionAffinity ?? 'None', 'None', 'any replica serves any stream');
  const d = find(objects, 'Deployment', 'packager');
  const c = d.spec.template.spec.containers[0];
  const env = containerEnv(objects, c);
  const portOf = (name: string) => c.ports.find((p: K8sObject) => p.name === name)?.containerPort;
  assert.equal(
    String(portOf(svc.spec.ports[0].targetPort)),
    env.get('PACKAGER_HTTP_PORT'),
    'the origin port',
  );
  const annotations = svc.metadata.annotations ?? {};
  assert.deepEqual(JSON.parse(annotations['cloud.google.com/neg']), { ingress: true }, 'container-native LB');
  const bc = find(
    objects,
    'BackendConfig',
    JSON.parse(annotations['cloud.google.com/backend-config']).default,
  );
  assert.ok(bc, 'the BackendConfig the packager origin names exists');
  assert.equal(bc.metadata.namespace, svc.metadata.namespace, 'in the Service namespace');
  assert.equal(bc.spec.sessionAffinity, undefined, 'no session affinity');
  // Cloud CDN: the origin's Cache-Control decides; the three LL-HLS parameters are in the key, nothing else.
  assert.equal(bc.spec.cdn?.enabled, true, 'Cloud CDN on');
  assert.equal(bc.spec.cdn.cacheMode, 'USE_ORIGIN_HEADERS');
  assert.equal(bc.spec.cdn.cachePolicy?.includeQueryString, true);
  assert.deepEqual([...bc.spec.cdn.cachePolicy.queryStringWhitelist].sort(), [
    '_HLS_msn',
    '_HLS_part',
    '_HLS_skip',
  ]);
  assert.notEqual(bc.spec.cdn.requestCoalescing, false, 'concurrent fills of one key coalesced');
  // A blocking request is held up to 3 target durations: the backend timeout must outlast it.
  const targetSeconds = packagerConfigSchema.shape.PACKAGER_LL_TARGET_SECONDS.parse(
    env.get('PACKAGER_LL_TARGET_SECONDS'),
  );
  assert.ok(bc.spec.timeoutSec > 3 * targetSeconds, `timeoutSec ${bc.spec.timeoutSec} > the hold`);
  assert.equal(bc.spec.healthCheck.type, 'HTTP');
  assert.equal(bc.spec.healthCheck.requestPath, '/readyz', 'the load balancer admits like readiness');
  assert.equal(String(bc.spec.healthCheck.port), env.get('PACKAGER_OPS_PORT'), 'health check on ops');
  // Held requests finish before the pod goes: the preStop wait outlasts the hold, the grace period both.
  const preStopSeconds = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  assert.ok(preStopSeconds > 3 * targetSeconds, 'preStop wait outlasts a held request');
  assert.ok(d.spec.template.spec.terminationGracePeriodSeconds >= preStopSeconds + 5, 'grace period');
});

test('GKE HPAs scale on gauges the services export; chat on connections, scaling down slowly', () => {
  const objects = rendered.gke as K8sObject[];
  const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
  for (const hpa of hpas) {
    const target = find(objects, hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
    assert.ok(target, `${hpa.metadata.name}: its target exists`);
    for (const m of hpa.spec.metrics) {
      const name = /^prometheus\.googleapis\.com\|(\w+)\|gauge$/.exec(m.pods?.metric?.name ?? '')?.[1];
      assert.ok(
        name,
        `${hpa.metadata.name}: a Managed Prometheus gauge per pod, got ${m.pods?.metric?.name}`,
      );
      const dir = join(repoRoot, 'services', target.metadata.name, 'src');
      const exported = readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .some((f) => readFileSync(join(dir, f), 'utf8').includes(`name: '${name}'`));
      assert.ok(exported, `${hpa.metadata.name}: services/${target.metadata.name} exports ${name}`);
    }
  }
  const chat = hpas.find((h) => h.spec.scaleTargetRef.name === 'chat');
  assert.ok(chat, 'an HPA for chat');
  const [metric] = chat.spec.metrics;
  assert.equal(metric.type, 'Pods');
  assert.equal(metric.pods.metric.name, 'prometheus.googleapis.com|chat_connections|gauge');
  assert.equal(metric.pods.target.type, 'AverageValue');
  const d = find(objects, 'Deployment', 'chat');
  const max = Number(containerEnv(objects, d.spec.template.spec.containers[0]).get('CHAT_MAX_CONNECTIONS'));
  const target = Number(metric.pods.target.averageValue);
  assert.ok(target > 0 && target <= max / 2, `target ${target} per pod leaves headroom below ${max}`);
  assert.ok(chat.spec.minReplicas >= 2, 'chat keeps two pods');
  // Removing a pod sends its clients elsewhere: only a sustained drop, one pod at a time.
  const down = chat.spec.behavior.scaleDown;
  assert.ok(down.stabilizationWindowSeconds >= 600, 'scale-down waits for a sustained drop');
  assert.ok(
    down.policies.every((p: K8sObject) => p.type === 'Pods' && p.value === 1 && p.periodSeconds >= 120),
    'one chat pod at a time',
  );
});

test('Managed Prometheus scrapes every Deployment on its ops port', () => {
  const objects = rendered.gke as K8sObject[];
  const monitors = objects.filter((o) => o.kind === 'PodMonitoring');
  for (const d of deployments(objects)) {
    const labels = d.spec.template.metadata.labels;
    const monitor = monitors.find((m) =>
      Object.entries(m.spec.selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v),
    );
    assert.ok(monitor, `${d.metadata.name}: scraped`);
    const ports = d.spec.template.spec.containers.flatMap((c: K8sObject) =>
      c.ports.map((p: K8sObject) => p.name),
    );
    for (const e of monitor.spec.endpoints)
      assert.ok(ports.includes(e.port), `${d.metadata.name}: port ${e.port}`);
  }
});

test('env var names and ports in the manifests are the ones the services read', () => {
  for (const [overlay, objects] of Object.entries(rendered)) {
    for (const d of deployments(objects)) {
      const service = serviceOf(d);
      const keys = Object.keys(SCHEMAS[service].shape);
      const c = d.spec.template.spec.containers[0];
      const env = containerEnv(objects, c);
      for (const name of env.keys()) assert.ok(keys.includes(name), `${overlay}/${service}: ${name} is read`);
      // Every value from a ConfigMap passes the service's own schema.
      const plain = Object.fromEntries([...env].filter(([, v]) => typeof v === 'string'));
      const parsed = SCHEMAS[service].partial().safeParse(plain);
      assert.ok(parsed.success, `${overlay}/${service}: ${parsed.error?.message}`);
      const port = (name: string) => c.ports.find((p: K8sObject) => p.name === name)?.containerPort;
      assert.equal(String(port('ops')), env.get(`${service.toUpperCase()}_OPS_PORT`), `${service}: ops port`);
      if (service === 'ingest') assert.equal(String(port('rtmp')), env.get('INGEST_RTMP_PORT'));
      if (service === 'packager') assert.equal(String(port('http')), env.get('PACKAGER_HTTP_PORT'));
      if (service === 'transcoder') assert.equal(String(port('parts')), env.get('TRANSCODER_PARTS_PORT'));
      if (service === 'chat') assert.equal(String(port('http')), env.get('CHAT_PORT'));
      if (service === 'web') assert.equal(String(port('http')), env.get('WEB_PORT'));
      // NATS credentials only from a Secret.
      assert.equal(env.get('NATS_USER'), service);
      assert.equal(env.get('NATS_PASSWORD')?.secretKeyRef?.name, 'nats-users');
    }
  }
});

test('no Secret and no credential in deploy/ (they are created in the cluster, docs/deploy-gke.md)', () => {
  for (const objects of Object.values(rendered)) assert.ok(!objects.some((o) => o.kind === 'Secret'));
  const files = readdirSync(join(repoRoot, 'deploy'), { recursive: true, encoding: 'utf8' }).filter(
    (f) => /\.(ya?ml|Dockerfile)$/.test(f) && !f.includes('node_modules'),
  );
  for (const f of files) {
    const text = readFileSync(join(repoRoot, 'deploy', f), 'utf8');
    assert.doesNotMatch(text, /kind:\s*Secret\b/, `${f}: no Secret`);
    assert.doesNotMatch(text, /password:\s*(?!\$)\S+/i, `${f}: passwords only as $VARIABLES`);
    assert.doesNotMatch(text, /BEGIN (RSA |EC )?PRIVATE KEY|"private_key"/, `${f}: no keys`);
  }
});

/** NATS subject matching: `*` one token, `>` the rest. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

test('every live.* subject in the NATS permissions matches subjects the contracts lib builds', () => {
  const known = [
    ...LIFECYCLE_TYPES.map((t) => subjects.streamEvent('s', t)),
    subjects.mediaSegment('s'),
    subjects.mediaPart('s'),
    subjects.llWatch('s'),
    subjects.originHealth('o'),
    subjects.ingestHealth('s'),
    subjects.transcoderHealth('w'),
    subjects.deadLetter(subjects.mediaSegment('s')),
    subjects.standbyAlert,
    subjects.placementAlert('s'),
    subjects.localProcesses,
    subjects.chatRoom('r'),
    subjects.chatReview('r'),
    ...Object.values(subjects.ctl).map((v) => (typeof v === 'string' ? v : v('w'))),
  ];
  const values = parse(readFileSync(join(repoRoot, 'deploy/nats/values.yaml'), 'utf8'));
  const users = Object.values(values.config.merge.accounts as Record<string, { users: K8sObject[] }>).flatMap(
    (a) => a.users,
  );
  let checked = 0;
  for (const user of users) {
    for (const kind of ['publish', 'subscribe'] as const) {
      for (const pattern of (user.permissions?.[kind]?.allow ?? []) as string[]) {
        if (!pattern.startsWith('live.') || pattern === 'live.>') continue;
        checked++;
        assert.ok(
          known.some((s) => matches(pattern, s)),
          `${user.user} ${kind} ${pattern}: no such subject in @live/contracts`,
        );
      }
    }
  }
  assert.ok(checked >= 15, `${checked} subjects checked`);
});

test('Dockerfiles: multi-stage, pruned workspace, production dependencies, non-root, no HEALTHCHECK', () => {
  for (const service of Object.keys(SCHEMAS)) {
    const text = readFileSync(join(repoRoot, `deploy/docker/${service}.Dockerfile`), 'utf8');
    const stages = text.match(/^FROM /gm) ?? [];
    assert.ok(stages.length >= 3, `${service}: multi-stage`);
    assert.match(text, new RegExp(`turbo@2 prune @live/${service} --docker`), `${service}: pruned workspace`);
    assert.match(text, /npm ci --omit=dev/, `${service}: production dependencies only`);
    assert.match(text, /^USER 1000:1000$/m, `${service}: non-root user`);
    assert.doesNotMatch(text, /^HEALTHCHECK/m, `${service}: probes own health`);
    // The same Node.js flags as tests, benchmarks and npm start run it with.
    const cmd = ['node', ...(SERVICE_NODE_FLAGS[service] ?? []), `services/${service}/dist/main.js`];
    assert.ok(
      text.includes(`CMD ${JSON.stringify(cmd).replaceAll(',', ', ')}`),
      `${service}: runs dist, ${cmd}`,
    );
    // The base image is pinned to the Node major the code is built and tested with.
    for (const from of text.match(/^FROM \S+/gm) ?? []) assert.match(from, /^FROM node:20-bookworm-slim$/);
  }
  const transcoder = readFileSync(join(repoRoot, 'deploy/docker/transcoder.Dockerfile'), 'utf8');
  assert.match(transcoder, /apt-get install -y --no-install-recommends ffmpeg/, "Debian's ffmpeg");
  const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8');
  for (const entry of ['**/node_modules', '.git', '.data']) assert.ok(ignore.includes(entry), entry);
});
