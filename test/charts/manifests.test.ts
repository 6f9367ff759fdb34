// What the rendered chart promises: least-privilege RBAC, the agent's mounts and hook, probes,
// labels, security contexts, NetworkPolicies, credentials, TLS, HA and observability wiring.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { CHART, find, findAll, type K8sObject, NAMESPACE, name, RELEASE, render } from './helm.js';

const ci = (f: string) => path.join(CHART, 'ci', f);
const podSpec = (o: K8sObject) => o.spec.template.spec;
const container = (o: K8sObject) => podSpec(o).containers[0];
const args = (o: K8sObject): string[] => container(o).args;
const flag = (o: K8sObject, f: string): string | undefined =>
  args(o)
    .find((a) => a === `--${f}` || a.startsWith(`--${f}=`))
    ?.split('=')
    .slice(1)
    .join('=');

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
/** Flattens RBAC rules into "group/resource:verb" grants. */
function grants(rules: Rule[]): string[] {
  return rules
    .flatMap((r) =>
      r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`))),
    )
    .sort();
}

describe('default values', () => {
  let objs: K8sObject[];
  before(async () => {
    objs = await render();
  });

  it('operator ClusterRole grants exactly the reads, status writes and Events it needs', () => {
    const cr = find(objs, 'ClusterRole', name('operator'));
    assert.deepEqual(
      grants(cr.rules),
      [
        '/events:create',
        '/events:patch',
        '/namespaces:get',
        '/namespaces:list',
        '/namespaces:watch',
        '/nodes:get',
        '/nodes:list',
        '/nodes:watch',
        '/pods:get',
        '/pods:list',
        '/pods:watch',
        'cpuburst.io/cpuburststrategies/status:get',
        'cpuburst.io/cpuburststrategies/status:patch',
        'cpuburst.io/cpuburststrategies/status:update',
        'cpuburst.io/cpuburststrategies:get',
        'cpuburst.io/cpuburststrategies:list',
        'cpuburst.io/cpuburststrategies:watch',
        'events.k8s.io/events:create',
        'events.k8s.io/events:patch',
      ].sort(),
    );
    for (const g of grants(cr.rules))
      assert.doesNotMatch(g, /\*|secrets|:delete|:deletecollection|:escalate|:bind/);
  });

  it('operator Role: read-only ConfigMaps and its Lease, in the release namespace only', () => {
    const role = find(objs, 'Role', name('operator'));
    assert.equal(role.metadata.namespace, NAMESPACE);
    assert.deepEqual(grants(role.rules), [
      '/configmaps:get',
      '/configmaps:list',
      '/configmaps:watch',
      'coordination.k8s.io/leases:create',
      'coordination.k8s.io/leases:get',
      'coordination.k8s.io/leases:update',
    ]);
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const b = find(objs, kind, name('operator'));
      assert.deepEqual(b.subjects, [
        { kind: 'ServiceAccount', name: name('operator'), namespace: NAMESPACE },
      ]);
      assert.equal(b.roleRef.name, name('operator'));
    }
  });

  it('API access: the operator and the broker (token verification) get RBAC and an API token; the agent neither', () => {
    const subjects = [...findAll(objs, 'ClusterRoleBinding'), ...findAll(objs, 'RoleBinding')].flatMap(
      (b) => b.subjects,
    );
    assert.deepEqual([...new Set(subjects.map((s: any) => s.name))].sort(), [
      name('broker'),
      name('operator'),
    ]);
    for (const sa of findAll(objs, 'ServiceAccount')) assert.equal(sa.automountServiceAccountToken, false);
    assert.deepEqual(
      findAll(objs, 'ServiceAccount')
        .map((s) => s.metadata.name)
        .sort(),
      [name('agent'), name('broker'), name('operator')],
    );
    assert.equal(podSpec(find(objs, 'Deployment', name('operator'))).automountServiceAccountToken, true);
    assert.equal(podSpec(find(objs, 'DaemonSet', name('agent'))).automountServiceAccountToken, false);
    assert.equal(podSpec(find(objs, 'Deployment', name('broker'))).automountServiceAccountToken, true);
    for (const [kind, n, sa] of [
      ['Deployment', 'operator', 'operator'],
      ['DaemonSet', 'agent', 'agent'],
      ['Deployment', 'broker', 'broker'],
    ] as const) {
      assert.equal(podSpec(find(objs, kind, name(n))).serviceAccountName, name(sa));
    }
  });

  it('broker RBAC: TokenReview (auth-delegator), OIDC discovery, and get pods in the release namespace only', () => {
    const sa = { kind: 'ServiceAccount', name: name('broker'), namespace: NAMESPACE };
    const crbs = findAll(objs, 'ClusterRoleBinding').filter((b) =>
      b.subjects.some((x: any) => x.name === sa.name),
    );
    assert.deepEqual(crbs.map((b) => b.roleRef.name).sort(), [
      'system:auth-delegator',
      'system:service-account-issuer-discovery',
    ]);
    for (const b of crbs) assert.deepEqual(b.subjects, [sa]);
    const role = find(objs, 'Role', name('broker'));
    assert.equal(role.metadata.namespace, NAMESPACE);
    assert.deepEqual(grants(role.rules), ['/pods:get']);
    const rb = find(objs, 'RoleBinding', name('broker'));
    assert.deepEqual(rb.subjects, [sa]);
    assert.deepEqual(rb.roleRef, {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: name('broker'),
    });
    assert.ok(!findAll(objs, 'ClusterRole').some((r) => r.metadata.name === name('broker')));
  });

  it('broker verifies ServiceAccount tokens: chain, audience, verify mode, agent and operator accounts', () => {
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(d, 'auth-chain'), 'k8s-token,password');
    assert.equal(flag(d, 'sa-audience'), 'cpuburst-broker');
    assert.equal(flag(d, 'sa-verify'), 'auto');
    assert.equal(flag(d, 'sa-agent'), `${NAMESPACE}/${name('agent')}`);
    assert.equal(flag(d, 'sa-operator'), `${NAMESPACE}/${name('operator')}`);
    assert.equal(flag(d, 'sa-allow-other'), undefined, 'other ServiceAccounts are refused by default');
    assert.equal(flag(d, 'agent-key-file'), undefined, 'no shared agent key by default');
    assert.equal(flag(d, 'kubeconfig'), undefined, 'in-cluster config');
    // The accounts named are exactly the ones the agent and operator pods run as.
    assert.equal(podSpec(find(objs, 'DaemonSet', name('agent'))).serviceAccountName, name('agent'));
    assert.equal(podSpec(find(objs, 'Deployment', name('operator'))).serviceAccountName, name('operator'));
  });

  it('no agent key and no operator password Secret by default; nothing but the token reaches the agent', () => {
    const secrets = findAll(objs, 'Secret')
      .map((s) => s.metadata.name)
      .sort();
    assert.deepEqual(secrets, [name('broker-api-key'), name('broker-users')]);
    const ds = find(objs, 'DaemonSet', name('agent'));
    assert.deepEqual(
      podSpec(ds).volumes.filter((v: any) => v.secret),
      [],
      'the agent mounts no Secret',
    );
    const users = Buffer.from(find(objs, 'Secret', name('broker-users')).data['users.yaml'], 'base64');
    assert.equal(users.toString().trim(), 'users: []', 'no operator password in the users file');
  });

  for (const [kind, n, mode] of [
    ['DaemonSet', 'agent', 0o400],
    ['Deployment', 'operator', 0o440],
  ] as const) {
    it(`${n}: a projected broker-audience ServiceAccount token, read from a file by --mqtt-token-file`, () => {
      const w = find(objs, kind, name(n));
      const vol = podSpec(w).volumes.find((v: any) => v.name === 'broker-token');
      assert.deepEqual(vol.projected, {
        defaultMode: mode,
        sources: [
          { serviceAccountToken: { audience: 'cpuburst-broker', expirationSeconds: 3600, path: 'token' } },
        ],
      });
      const m = container(w).volumeMounts.find((x: any) => x.name === 'broker-token');
      assert.deepEqual(m, { name: 'broker-token', mountPath: '/var/run/secrets/cpuburst', readOnly: true });
      assert.equal(flag(w, 'mqtt-token-file'), '/var/run/secrets/cpuburst/token');
      for (const f of ['mqtt-password', 'mqtt-password-file', 'mqtt-agent-key-file', 'mqtt-tls-cert'])
        assert.equal(flag(w, f), undefined, `${n} --${f}`);
      assert.ok(!container(w).env.some((e: any) => /TOKEN|PASSWORD/.test(e.name)), 'never in env');
    });
  }

  it('operator: 2 replicas, leader election on a Lease, PDB, probes on 8081, metrics on 8080', () => {
    const d = find(objs, 'Deployment', name('operator'));
    assert.equal(d.spec.replicas, 2);
    assert.equal(args(d)[0], 'operator');
    assert.ok(args(d).includes('--leader-elect'));
    assert.equal(flag(d, 'lease-name'), name('operator'));
    assert.equal(flag(d, 'lease-namespace'), '$(POD_NAMESPACE)');
    assert.equal(flag(d, 'identity'), '$(POD_NAME)');
    assert.equal(flag(d, 'config-map-name'), 'cpu-burst-config');
    assert.equal(flag(d, 'mqtt-url'), `mqtt://${name('broker')}.${NAMESPACE}.svc:1883`);
    assert.equal(flag(d, 'probe-port'), '8081');
    assert.equal(flag(d, 'metrics-port'), '8080');
    const env = Object.fromEntries(
      container(d).env.map((e: any) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    );
    assert.deepEqual(env, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace' });
    const c = container(d);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'probes' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'probes' });
    assert.deepEqual(
      c.ports.map((p: any) => [p.name, p.containerPort]),
      [
        ['probes', 8081],
        ['metrics', 8080],
      ],
    );
    const pdb = find(objs, 'PodDisruptionBudget', name('operator'));
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
    // Non-root: the token file must be readable through the pod's fsGroup (projected mode 0440).
    assert.equal(podSpec(d).securityContext.fsGroup, podSpec(d).securityContext.runAsGroup);
  });

  it('agent DaemonSet: cgroup and state hostPaths, NODE_NAME, tolerations, maxUnavailable, no host namespaces', () => {
    const ds = find(objs, 'DaemonSet', name('agent'));
    const spec = podSpec(ds);
    const vols = Object.fromEntries(spec.volumes.map((v: any) => [v.name, v]));
    assert.deepEqual(vols.cgroup.hostPath, { path: '/sys/fs/cgroup', type: 'Directory' });
    assert.deepEqual(vols.state.hostPath, { path: '/var/lib/cpuburst', type: 'DirectoryOrCreate' });
    assert.equal(vols['agent-key'], undefined, 'no shared agent key by default');
    const mounts = Object.fromEntries(container(ds).volumeMounts.map((m: any) => [m.name, m]));
    assert.equal(mounts.cgroup.mountPath, '/host/sys/fs/cgroup');
    assert.notEqual(mounts.cgroup.readOnly, true, 'the cgroup mount must be writable');
    assert.equal(mounts.cgroup.mountPropagation, 'HostToContainer');
    assert.equal(mounts.state.mountPath, '/var/lib/cpuburst');
    assert.equal(mounts['broker-token'].readOnly, true);
    assert.equal(flag(ds, 'cgroup-root'), '/host/sys/fs/cgroup');
    assert.equal(flag(ds, 'state-dir'), '/var/lib/cpuburst');
    assert.equal(flag(ds, 'node-name'), '$(NODE_NAME)');
    assert.equal(flag(ds, 'metrics-port'), '9316');
    const nodeEnv = container(ds).env.find((e: any) => e.name === 'NODE_NAME');
    assert.equal(nodeEnv.valueFrom.fieldRef.fieldPath, 'spec.nodeName');
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    assert.deepEqual(ds.spec.updateStrategy, {
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '20%' },
    });
    assert.ok(!spec.hostNetwork && !spec.hostPID && !spec.hostIPC, 'the agent needs no host namespaces');
    assert.deepEqual(container(ds).livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(container(ds).readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
  });

  it('agent preStop runs the restore-all one-shot against the mounted state dir and cgroup root', () => {
    const ds = find(objs, 'DaemonSet', name('agent'));
    const cmd: string[] = container(ds).lifecycle.preStop.exec.command;
    assert.deepEqual(cmd.slice(0, 3), ['cpuburst', 'agent', '--restore-all']);
    assert.ok(cmd.includes('--cgroup-root=/host/sys/fs/cgroup'));
    assert.ok(cmd.includes('--state-dir=/var/lib/cpuburst'));
    assert.ok(!cmd.some((a) => a.includes('$(')), 'exec hooks get no $(VAR) expansion');
    assert.ok(podSpec(ds).terminationGracePeriodSeconds >= 30);
  });

  it('agent runs as root (cgroup files are root-owned) but unprivileged, all capabilities dropped', () => {
    const ds = find(objs, 'DaemonSet', name('agent'));
    const sc = container(ds).securityContext;
    assert.equal(sc.privileged, false);
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
    assert.equal(sc.runAsUser, 0);
    assert.deepEqual(podSpec(ds).securityContext.seccompProfile, { type: 'RuntimeDefault' });
  });

  it('operator and broker: non-root, read-only root filesystem, no capabilities, seccomp RuntimeDefault', () => {
    for (const n of ['operator', 'broker']) {
      const d = find(objs, 'Deployment', name(n));
      const pod = podSpec(d).securityContext;
      assert.equal(pod.runAsNonRoot, true, n);
      assert.ok(pod.runAsUser > 0, n);
      assert.deepEqual(pod.seccompProfile, { type: 'RuntimeDefault' }, n);
      const sc = container(d).securityContext;
      assert.equal(sc.allowPrivilegeEscalation, false, n);
      assert.equal(sc.readOnlyRootFilesystem, true, n);
      assert.deepEqual(sc.capabilities, { drop: ['ALL'] }, n);
      assert.ok(
        container(d).volumeMounts.some((m: any) => m.mountPath === '/tmp'),
        `${n} gets a writable /tmp`,
      );
    }
  });

  it('broker: one replica with an emptyDir store, credentials from Secrets, anonymous refused', () => {
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(d.spec.replicas, 1);
    assert.equal(args(d)[0], 'broker');
    assert.equal(flag(d, 'mqtt-port'), '1883');
    assert.equal(flag(d, 'ws-port'), '8083');
    assert.equal(flag(d, 'http-port'), '18083');
    assert.equal(flag(d, 'users-file'), '/etc/cpuburst/users/users.yaml');
    assert.equal(flag(d, 'api-key-file'), '/etc/cpuburst/api/api-key');
    assert.equal(flag(d, 'data-dir'), '/var/lib/cpuburst-broker');
    assert.equal(flag(d, 'broker-id'), '$(POD_NAME)');
    assert.equal(flag(d, 'allow-anonymous'), undefined);
    assert.equal(flag(d, 'redis-url'), undefined);
    assert.equal(flag(d, 'tls-port'), '-1', 'TLS listener off without certificates');
    const data = podSpec(d).volumes.find((v: any) => v.name === 'data');
    assert.ok(data.emptyDir, 'embedded store on an emptyDir by default');
    assert.deepEqual(container(d).livenessProbe.httpGet, { path: '/healthz', port: 'http' });
    assert.deepEqual(container(d).readinessProbe.httpGet, { path: '/readyz', port: 'http' });
    assert.equal(findAll(objs, 'PodDisruptionBudget').length, 1, 'no broker PDB on a single replica');
  });

  it('Services: MQTT ports on the broker Service, HTTP API and metrics on separate ClusterIP Services', () => {
    const mqtt = find(objs, 'Service', name('broker'));
    assert.deepEqual(
      mqtt.spec.ports.map((p: any) => `${p.name}:${p.port}`),
      ['mqtt:1883', 'ws:8083'],
    );
    const api = find(objs, 'Service', name('broker-api'));
    assert.equal(api.spec.type, 'ClusterIP');
    assert.deepEqual(
      api.spec.ports.map((p: any) => `${p.name}:${p.port}`),
      ['http:18083'],
    );
    assert.equal(find(objs, 'Service', name('operator-metrics')).spec.ports[0].port, 8080);
    const agent = find(objs, 'Service', name('agent-metrics'));
    assert.equal(agent.spec.clusterIP, 'None');
    assert.equal(agent.spec.ports[0].port, 9316);
    // Every Service selects pods that exist, by port names those pods declare.
    const workloads = [...findAll(objs, 'Deployment'), ...findAll(objs, 'DaemonSet')];
    for (const svc of findAll(objs, 'Service')) {
      const target = workloads.find((w) =>
        Object.entries(svc.spec.selector).every(([k, v]) => w.spec.template.metadata.labels[k] === v),
      );
      assert.ok(target, `Service ${svc.metadata.name} selects no workload`);
      const portNames = container(target).ports.map((p: any) => p.name);
      for (const p of svc.spec.ports)
        assert.ok(portNames.includes(p.targetPort), `${svc.metadata.name}:${p.targetPort}`);
    }
  });

  it('labels: standard app.kubernetes.io/* everywhere, helm.sh/chart never on pod templates', () => {
    for (const o of objs) {
      const l = o.metadata.labels ?? {};
      assert.equal(l['app.kubernetes.io/name'], 'cpuburst', `${o.kind}/${o.metadata.name}`);
      assert.equal(l['app.kubernetes.io/instance'], RELEASE);
      assert.equal(l['app.kubernetes.io/managed-by'], 'Helm');
      assert.match(l['helm.sh/chart'] ?? '', /^cpuburst-\d+\.\d+\.\d+/);
      assert.ok(l['app.kubernetes.io/version']);
    }
    for (const w of [...findAll(objs, 'Deployment'), ...findAll(objs, 'DaemonSet')]) {
      const pl = w.spec.template.metadata.labels;
      assert.equal(pl['helm.sh/chart'], undefined, `${w.metadata.name} pod template`);
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels)) assert.equal(pl[k], v);
      assert.deepEqual(Object.keys(w.spec.selector.matchLabels).sort(), [
        'app.kubernetes.io/component',
        'app.kubernetes.io/instance',
        'app.kubernetes.io/name',
      ]);
    }
  });

  it('NetworkPolicy: MQTT open to IoT, HTTP API only to the release and monitoring, metrics only to monitoring', () => {
    const np = find(objs, 'NetworkPolicy', name('broker'));
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    const [mqttRule, httpRule] = np.spec.ingress;
    assert.deepEqual(
      mqttRule.ports.map((p: any) => p.port),
      ['mqtt', 'ws'],
    );
    assert.equal(mqttRule.from, undefined, 'IoT devices may connect from anywhere by default');
    assert.deepEqual(
      httpRule.ports.map((p: any) => p.port),
      ['http'],
    );
    assert.deepEqual(httpRule.from, [
      {
        podSelector: {
          matchLabels: { 'app.kubernetes.io/name': 'cpuburst', 'app.kubernetes.io/instance': RELEASE },
        },
      },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    for (const n of ['operator', 'agent']) {
      const p = find(objs, 'NetworkPolicy', name(n));
      assert.deepEqual(p.spec.podSelector.matchLabels['app.kubernetes.io/component'], n);
      assert.equal(p.spec.ingress.length, 1);
      assert.deepEqual(p.spec.ingress[0].ports, [{ port: 'metrics', protocol: 'TCP' }]);
      assert.deepEqual(p.spec.ingress[0].from, [
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
      ]);
    }
  });

  it('credentials: the HTTP API key is generated per render', () => {
    const dec = (s: string) => Buffer.from(s, 'base64').toString();
    assert.match(dec(find(objs, 'Secret', name('broker-api-key')).data['api-key']), /^[A-Za-z0-9]{40}$/);
  });

  it('ConfigMap cpu-burst-config holds Koordinator-format JSON; example strategy is off', () => {
    const cm = find(objs, 'ConfigMap', 'cpu-burst-config');
    const cfg = JSON.parse(cm.data['cpu-burst-config']);
    assert.deepEqual(Object.keys(cfg).sort(), ['clusterStrategy', 'nodeStrategies']);
    assert.equal(cfg.clusterStrategy.policy, 'none');
    assert.equal(cfg.clusterStrategy.cpuBurstPercent, 100);
    assert.equal(findAll(objs, 'CpuBurstStrategy').length, 0);
    assert.equal(findAll(objs, 'ServiceMonitor').length, 0, 'ServiceMonitor only behind its flag');
  });

  it('helm test pod: a hook, non-root, inside the release (so the broker NetworkPolicy lets it in)', () => {
    const pod = find(objs, 'Pod', name('test'));
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.equal(pod.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    const np = find(objs, 'NetworkPolicy', name('broker'));
    for (const [k, v] of Object.entries<string>(np.spec.ingress[1].from[0].podSelector.matchLabels)) {
      assert.equal(pod.metadata.labels[k], v);
    }
    assert.match(
      pod.spec.containers[0].env[0].value,
      new RegExp(`^http://${name('broker-api')}\\.${NAMESPACE}\\.svc:18083$`),
    );
  });

  it('Grafana dashboard ConfigMap: labelled for the sidecar, panels on cpuburst_ metrics', () => {
    const cm = find(objs, 'ConfigMap', name('dashboard'));
    assert.equal(cm.metadata.labels.grafana_dashboard, '1');
    const dash = JSON.parse(cm.data['cpuburst.json']);
    const exprs: string[] = dash.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr));
    const titles: string[] = dash.panels.map((p: any) => p.title.toLowerCase());
    for (const want of [
      'throttle ratio',
      'burst time',
      'quota',
      'node state',
      'messages',
      'connected clients',
    ]) {
      assert.ok(
        titles.some((t) => t.includes(want)),
        `dashboard has no "${want}" panel`,
      );
    }
    for (const e of exprs) assert.match(e, /cpuburst_/, e);
    for (const prefix of ['cpuburst_agent_', 'cpuburst_broker_', 'cpuburst_reconcile_']) {
      assert.ok(
        exprs.some((e) => e.includes(prefix)),
        `no query on ${prefix}*`,
      );
    }
  });
});

describe('ci/ha-redis-values.yaml', () => {
  let objs: K8sObject[];
  before(async () => {
    objs = await render({ valuesFiles: [ci('ha-redis-values.yaml')] });
  });

  it('brokers share an in-chart Redis, spread across nodes, with a PDB', () => {
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(d.spec.replicas, 3);
    assert.equal(flag(d, 'redis-url'), `redis://${name('redis')}.${NAMESPACE}.svc:6379`);
    assert.ok(podSpec(d).affinity.podAntiAffinity);
    const redis = find(objs, 'Deployment', name('redis'));
    assert.equal(container(redis).securityContext.readOnlyRootFilesystem, true);
    assert.equal(podSpec(redis).securityContext.runAsNonRoot, true);
    find(objs, 'Service', name('redis'));
    assert.equal(find(objs, 'PodDisruptionBudget', name('broker')).spec.maxUnavailable, 1);
    assert.equal(find(objs, 'PodDisruptionBudget', name('operator')).spec.minAvailable, 2);
    const np = find(objs, 'NetworkPolicy', name('redis'));
    assert.deepEqual(
      np.spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'],
      'broker',
    );
  });

  it('ServiceMonitors for operator, agent and broker with the Prometheus selector label', () => {
    const sms = findAll(objs, 'ServiceMonitor');
    assert.deepEqual(sms.map((s) => s.metadata.name).sort(), [
      name('agent'),
      name('broker'),
      name('operator'),
    ]);
    for (const sm of sms) {
      assert.equal(sm.metadata.labels.release, 'prometheus');
      const component = sm.spec.selector.matchLabels['app.kubernetes.io/component'];
      const svc = findAll(objs, 'Service').find(
        (s) =>
          s.metadata.labels['app.kubernetes.io/component'] === component &&
          s.spec.ports.some((p: any) => p.name === sm.spec.endpoints[0].port),
      );
      assert.ok(svc, `ServiceMonitor ${sm.metadata.name} matches no Service port`);
      assert.equal(sm.spec.endpoints[0].path, '/metrics');
    }
  });

  it('renders the example strategy', () => {
    const s = find(objs, 'CpuBurstStrategy', 'example-burst');
    assert.equal(s.apiVersion, 'cpuburst.io/v1alpha1');
    assert.equal(s.spec.policy, 'cpuBurstOnly');
  });
});

describe('ci/tls-values.yaml', () => {
  let objs: K8sObject[];
  before(async () => {
    objs = await render({ valuesFiles: [ci('tls-values.yaml')] });
  });

  it('cert-manager Certificate covers the Service DNS names and feeds the broker TLS flags', () => {
    const cert = find(objs, 'Certificate', name('broker-tls'));
    const svc = name('broker');
    assert.deepEqual(cert.spec.dnsNames, [
      svc,
      `${svc}.${NAMESPACE}`,
      `${svc}.${NAMESPACE}.svc`,
      `${svc}.${NAMESPACE}.svc.cluster.local`,
      'mqtt.example.com',
    ]);
    assert.deepEqual(cert.spec.issuerRef, {
      name: 'cpuburst-ca',
      kind: 'ClusterIssuer',
      group: 'cert-manager.io',
    });
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(d, 'tls-port'), '8883');
    assert.equal(flag(d, 'tls-cert'), '/etc/cpuburst/tls/tls.crt');
    assert.equal(flag(d, 'tls-key'), '/etc/cpuburst/tls/tls.key');
    assert.equal(flag(d, 'wss-port'), '8084');
    assert.equal(
      podSpec(d).volumes.find((v: any) => v.name === 'tls').secret.secretName,
      cert.spec.secretName,
    );
  });

  it('operator and agents connect over mqtts and see only ca.crt, never the broker key', () => {
    for (const w of [find(objs, 'Deployment', name('operator')), find(objs, 'DaemonSet', name('agent'))]) {
      assert.equal(flag(w, 'mqtt-url'), `mqtts://${name('broker')}.${NAMESPACE}.svc:8883`);
      assert.equal(flag(w, 'mqtt-ca-file'), '/etc/cpuburst/tls/ca.crt');
      const ca = podSpec(w).volumes.find((v: any) => v.name === 'broker-ca');
      assert.deepEqual(ca.secret.items, [{ key: 'ca.crt', path: 'ca.crt' }]);
    }
  });

  it('LoadBalancer for IoT on MQTT ports only; NetworkPolicy limits sources but keeps the release in', () => {
    const svc = find(objs, 'Service', name('broker'));
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.deepEqual(svc.spec.loadBalancerSourceRanges, ['203.0.113.0/24']);
    assert.deepEqual(
      svc.spec.ports.map((p: any) => p.name),
      ['mqtt', 'mqtts', 'ws', 'wss'],
    );
    const np = find(objs, 'NetworkPolicy', name('broker'));
    assert.deepEqual(np.spec.ingress[0].from[0], { ipBlock: { cidr: '203.0.113.0/24' } });
    assert.equal(np.spec.ingress[0].from[1].podSelector.matchLabels['app.kubernetes.io/instance'], RELEASE);
  });

  it('extra IoT users land in the broker users file (the operator uses its token, so it is not there)', () => {
    const users = Buffer.from(
      find(objs, 'Secret', name('broker-users')).data['users.yaml'],
      'base64',
    ).toString();
    assert.doesNotMatch(users, /username: operator/);
    assert.match(users, /username: sensor-1/);
    assert.match(users, /passwordHash:/);
  });
});

describe('ci/minimal-values.yaml and ci/privileged-agent-values.yaml', () => {
  it('minimal: one operator without leader election or PDB, no NetworkPolicy, no dashboard, no websockets', async () => {
    const objs = await render({ valuesFiles: [ci('minimal-values.yaml')] });
    const d = find(objs, 'Deployment', name('operator'));
    assert.equal(d.spec.replicas, 1);
    assert.ok(args(d).includes('--no-leader-elect'));
    assert.equal(findAll(objs, 'PodDisruptionBudget').length, 0);
    assert.equal(findAll(objs, 'NetworkPolicy').length, 0);
    assert.equal(findAll(objs, 'ConfigMap').length, 1);
    assert.equal(flag(find(objs, 'Deployment', name('broker')), 'ws-port'), '-1');
  });

  it('privileged agent: privileged container, system-node-critical, longer grace period', async () => {
    const objs = await render({ valuesFiles: [ci('privileged-agent-values.yaml')] });
    const ds = find(objs, 'DaemonSet', name('agent'));
    assert.equal(container(ds).securityContext.privileged, true);
    assert.equal(container(ds).securityContext.capabilities, undefined);
    assert.equal(podSpec(ds).priorityClassName, 'system-node-critical');
    assert.equal(podSpec(ds).terminationGracePeriodSeconds, 60);
    assert.equal(ds.spec.updateStrategy.rollingUpdate.maxUnavailable, 1);
  });
});

describe('value combinations', () => {
  it('credentials given in values are used as is (legacy password and agent key on)', async () => {
    const objs = await render({
      set: [
        'auth.agentKey.enabled=true',
        'auth.operatorPassword.enabled=true',
        'credentials.operatorPassword=op-secret',
        'credentials.agentKey=agent-secret',
        'credentials.apiKey=api',
      ],
    });
    const dec = (n: string, k: string) =>
      Buffer.from(find(objs, 'Secret', name(n)).data[k], 'base64').toString();
    assert.equal(dec('operator-mqtt', 'password'), 'op-secret');
    assert.equal(dec('agent-key', 'agent-key'), 'agent-secret');
    assert.equal(dec('broker-api-key', 'api-key'), 'api');
    assert.match(dec('broker-users', 'users.yaml'), /password: op-secret/);
  });

  it('an existing TLS Secret is used without cert-manager', async () => {
    const objs = await render({ set: ['tls.enabled=true', 'tls.existingSecret=my-tls'] });
    assert.equal(findAll(objs, 'Certificate').length, 0);
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(podSpec(d).volumes.find((v: any) => v.name === 'tls').secret.secretName, 'my-tls');
  });

  it('capabilities and an external Redis URL pass through', async () => {
    const objs = await render({
      set: [
        'agent.capabilities={DAC_OVERRIDE}',
        'broker.replicaCount=2',
        'broker.redis.url=redis://redis.db:6379',
      ],
    });
    assert.deepEqual(container(find(objs, 'DaemonSet', name('agent'))).securityContext.capabilities, {
      drop: ['ALL'],
      add: ['DAC_OVERRIDE'],
    });
    assert.equal(flag(find(objs, 'Deployment', name('broker')), 'redis-url'), 'redis://redis.db:6379');
    assert.equal(findAll(objs, 'Deployment').length, 2, 'no in-chart Redis with an external URL');
  });

  it('restoreOnStop=false drops the preStop hook; persistence gives the broker a PVC and Recreate', async () => {
    const objs = await render({ set: ['agent.restoreOnStop=false', 'broker.persistence.enabled=true'] });
    assert.equal(container(find(objs, 'DaemonSet', name('agent'))).lifecycle, undefined);
    const d = find(objs, 'Deployment', name('broker'));
    assert.equal(d.spec.strategy.type, 'Recreate');
    const pvc = find(objs, 'PersistentVolumeClaim', name('broker-data'));
    assert.equal(
      podSpec(d).volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName,
      pvc.metadata.name,
    );
  });

  it('an empty metricsFrom denies metrics ingress instead of allowing everyone', async () => {
    const objs = await render({ set: ['networkPolicy.metricsFrom=null'] });
    assert.deepEqual(find(objs, 'NetworkPolicy', name('operator')).spec.ingress, []);
    assert.deepEqual(find(objs, 'NetworkPolicy', name('agent')).spec.ingress, []);
  });

  it('components can be switched off', async () => {
    const objs = await render({ set: ['operator.enabled=false', 'broker.enabled=false'] });
    assert.deepEqual(
      [...new Set(objs.flatMap((o) => o.metadata.labels?.['app.kubernetes.io/component'] ?? []))],
      ['agent'],
    );
  });
});

describe('ci/legacy-credentials-values.yaml (auth.agentKey, auth.operatorPassword)', () => {
  let objs: K8sObject[];
  before(async () => {
    objs = await render({ valuesFiles: [ci('legacy-credentials-values.yaml')] });
  });

  it('generated once per render, consistent between the broker users file, the operator and the agents', () => {
    const secret = (n: string) => find(objs, 'Secret', name(n)).data;
    const dec = (s: string) => Buffer.from(s, 'base64').toString();
    const password = dec(secret('operator-mqtt').password);
    assert.match(password, /^[A-Za-z0-9]{40}$/);
    assert.equal(
      dec(secret('broker-users')['users.yaml']).trim(),
      `users:\n- password: ${password}\n  username: operator`,
    );
    assert.match(dec(secret('agent-key')['agent-key']), /^[A-Za-z0-9]{40}$/);
    assert.notEqual(dec(secret('agent-key')['agent-key']), password);
  });

  it('agents use the key, the operator its password; the broker still checks tokens first', () => {
    const ds = find(objs, 'DaemonSet', name('agent'));
    assert.equal(flag(ds, 'mqtt-agent-key-file'), '/etc/cpuburst/agent/agent-key');
    assert.equal(flag(ds, 'mqtt-token-file'), undefined);
    const vols = Object.fromEntries(podSpec(ds).volumes.map((v: any) => [v.name, v]));
    assert.equal(vols['agent-key'].secret.secretName, name('agent-key'));
    assert.equal(vols['agent-key'].secret.defaultMode, 0o400, 'the key is readable by root only');
    assert.equal(vols['broker-token'], undefined);
    const op = find(objs, 'Deployment', name('operator'));
    assert.equal(flag(op, 'mqtt-username'), 'operator');
    assert.equal(flag(op, 'mqtt-password-file'), '/etc/cpuburst/mqtt/password');
    assert.equal(flag(op, 'mqtt-token-file'), undefined);
    const secretVol = podSpec(op).volumes.find((v: any) => v.name === 'mqtt-credentials');
    assert.equal(secretVol.secret.secretName, name('operator-mqtt'));
    assert.equal(secretVol.secret.defaultMode, 0o440);
    const b = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(b, 'auth-chain'), 'k8s-token,password,agent-key');
    assert.equal(flag(b, 'agent-key-file'), '/etc/cpuburst/agent/agent-key');
  });
});

describe('ci/agent-mtls-values.yaml (agent.mtls.enabled)', () => {
  let objs: K8sObject[];
  before(async () => {
    objs = await render({ valuesFiles: [ci('agent-mtls-values.yaml')] });
  });

  it("agents present their node's certificate from the host directory, over mqtts, and carry no token", () => {
    const ds = find(objs, 'DaemonSet', name('agent'));
    assert.equal(flag(ds, 'mqtt-url'), `mqtts://${name('broker')}.${NAMESPACE}.svc:8883`);
    assert.equal(flag(ds, 'mqtt-tls-cert'), '/etc/cpuburst/agent-tls/tls.crt');
    assert.equal(flag(ds, 'mqtt-tls-key'), '/etc/cpuburst/agent-tls/tls.key');
    assert.equal(flag(ds, 'mqtt-ca-file'), '/etc/cpuburst/tls/ca.crt');
    assert.equal(flag(ds, 'mqtt-token-file'), undefined);
    const vols = Object.fromEntries(podSpec(ds).volumes.map((v: any) => [v.name, v]));
    assert.deepEqual(vols['agent-tls'].hostPath, { path: '/etc/cpuburst/agent-tls', type: 'Directory' });
    assert.equal(vols['broker-token'], undefined);
    const m = container(ds).volumeMounts.find((x: any) => x.name === 'agent-tls');
    assert.deepEqual(m, { name: 'agent-tls', mountPath: '/etc/cpuburst/agent-tls', readOnly: true });
  });

  it('the broker checks client certificates first (against ca.crt), the operator keeps its token', () => {
    const b = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(b, 'auth-chain'), 'tls-cert,k8s-token,password');
    assert.equal(flag(b, 'tls-ca'), '/etc/cpuburst/tls/ca.crt');
    assert.equal(flag(b, 'tls-require-client-cert'), undefined, 'the operator and IoT devices have none');
    assert.equal(
      podSpec(b).volumes.find((v: any) => v.name === 'tls').secret.secretName,
      'cpuburst-broker-tls',
    );
    const op = find(objs, 'Deployment', name('operator'));
    assert.equal(flag(op, 'mqtt-token-file'), '/var/run/secrets/cpuburst/token');
  });

  it('mTLS off (the default) renders no agent certificate anywhere', async () => {
    const plain = await render({ set: ['tls.enabled=true', 'tls.existingSecret=t'] });
    const ds = find(plain, 'DaemonSet', name('agent'));
    assert.equal(flag(ds, 'mqtt-tls-cert'), undefined);
    assert.ok(!podSpec(ds).volumes.some((v: any) => v.name === 'agent-tls'));
    assert.equal(flag(find(plain, 'Deployment', name('broker')), 'auth-chain'), 'k8s-token,password');
  });
});

describe('token values', () => {
  it('audience, lifetime and verify mode reach the pods and the broker alike', async () => {
    const objs = await render({
      set: [
        'auth.serviceAccountToken.audience=mqtt.example',
        'auth.serviceAccountToken.expirationSeconds=900',
        'auth.serviceAccountToken.verify=tokenreview',
      ],
    });
    for (const w of [find(objs, 'DaemonSet', name('agent')), find(objs, 'Deployment', name('operator'))]) {
      const src = podSpec(w).volumes.find((v: any) => v.name === 'broker-token').projected.sources[0];
      assert.deepEqual(src.serviceAccountToken, {
        audience: 'mqtt.example',
        expirationSeconds: 900,
        path: 'token',
      });
    }
    const b = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(b, 'sa-audience'), 'mqtt.example');
    assert.equal(flag(b, 'sa-verify'), 'tokenreview');
  });

  it('allowOtherServiceAccounts: --sa-allow-other, and the pod read becomes cluster-wide', async () => {
    const objs = await render({ set: ['auth.serviceAccountToken.allowOtherServiceAccounts=true'] });
    assert.equal(flag(find(objs, 'Deployment', name('broker')), 'sa-allow-other'), '');
    const cr = find(objs, 'ClusterRole', name('broker'));
    assert.deepEqual(grants(cr.rules), ['/pods:get']);
    assert.equal(find(objs, 'ClusterRoleBinding', name('broker')).roleRef.kind, 'ClusterRole');
    assert.ok(!findAll(objs, 'Role').some((r) => r.metadata.name === name('broker')));
  });

  it('custom ServiceAccount names are what the broker maps', async () => {
    const objs = await render({
      set: [
        'agent.serviceAccount.name=node-agent',
        'operator.serviceAccount.create=false',
        'operator.serviceAccount.name=my-operator',
      ],
    });
    const b = find(objs, 'Deployment', name('broker'));
    assert.equal(flag(b, 'sa-agent'), `${NAMESPACE}/node-agent`);
    assert.equal(flag(b, 'sa-operator'), `${NAMESPACE}/my-operator`);
    assert.equal(podSpec(find(objs, 'DaemonSet', name('agent'))).serviceAccountName, 'node-agent');
  });

  it('a broker without in-chart agents or operator maps no ServiceAccount to them', async () => {
    const noOperator = find(await render({ set: ['operator.enabled=false'] }), 'Deployment', name('broker'));
    assert.equal(flag(noOperator, 'sa-operator'), undefined);
    assert.equal(flag(noOperator, 'sa-agent'), `${NAMESPACE}/${name('agent')}`);
    const alone = find(
      await render({ set: ['operator.enabled=false', 'agent.enabled=false'] }),
      'Deployment',
      name('broker'),
    );
    assert.equal(flag(alone, 'auth-chain'), 'password', 'IoT users only');
    for (const f of ['sa-agent', 'sa-operator', 'sa-audience', 'sa-verify'])
      assert.equal(flag(alone, f), undefined, f);
  });

  it('broker.rbac.create=false leaves the bindings to the admin', async () => {
    const objs = await render({ set: ['broker.rbac.create=false'] });
    const subjects = [...findAll(objs, 'ClusterRoleBinding'), ...findAll(objs, 'RoleBinding')].flatMap(
      (b) => b.subjects,
    );
    assert.ok(!subjects.some((s: any) => s.name === name('broker')));
  });
});
