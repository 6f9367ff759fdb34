// Wires reflectors → work queue → planner → publisher / status writer / Events. Level-based:
// every handler reads the caches and the latest plan, never the event that triggered it.
//   key "plan"            recompute the plan; enqueue changed nodes and every strategy
//   key "node/<name>"     publish the node's document if its content differs from what was published
//   key "strategy/<name>" merge-patch the strategy's status if it differs from the computed one
//   key "configmap"       re-read the ConfigMap; a broken one keeps the previous config + Warning Event
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../common/log.js';
import {
  type AckMessage,
  type DecisionDocument,
  nextVersion,
  PROTOCOL_API_VERSION,
  type StatusReport,
} from '../protocol/index.js';
import type { AgentMessage } from './bus.js';
import type { EventInput, KubeApis } from './kube/client.js';
import { createEvent, patchStrategyStatus } from './kube/client.js';
import { EventRecorder } from './kube/events.js';
import { type KubeObject, Reflector } from './kube/reflector.js';
import { WorkQueue } from './kube/workqueue.js';
import type { OperatorMetrics } from './metrics.js';
import { type ClusterBurstConfig, DEFAULT_FULL_CONFIG, parseConfigMapData } from './planner/config.js';
import {
  contentKey,
  mergeParts,
  type NodeContent,
  type NodePart,
  type Plan,
  type PlanContext,
  planContext,
  planNode,
} from './planner/plan.js';
import { type PodLike, slimMeta, slimPod } from './planner/pods.js';
import { canonical, computeStatus, type NodeFeedback, sameStatus } from './planner/status.js';
import { type CpuBurstStrategy, CRD_GROUP, CRD_KIND, CRD_PLURAL, CRD_VERSION } from './types.js';

export interface Publisher {
  publish(doc: DecisionDocument): Promise<void>;
  /** Deletes the node's retained decision document (an empty retained payload). */
  clear(node: string): Promise<void>;
  readonly connected: boolean;
}

export interface ControllerOptions {
  apis: KubeApis;
  publisher: Publisher;
  log: Logger;
  metrics: OperatorMetrics;
  identity: string;
  configMapName: string;
  configMapNamespace: string;
  resyncMs?: number;
  staleMs?: number;
  watchTimeoutSeconds?: number;
  /** How often schedules are re-evaluated. */
  scheduleCheckMs?: number;
  /** Pods' initial state through a watch-list (sendInitialEvents), falling back to list. Default true. */
  watchList?: boolean;
  now?: () => Date;
}

/**
 * Status of a strategy counts every pod it decides (550,000 at most): acks and publishes only mark it
 * dirty, and it is recomputed at most this often.
 */
const STATUS_THROTTLE_MS = 250;

/** Longest stretch of planning without yielding to the event loop. */
const PLAN_SLICE_MS = 50;

type Obj = KubeObject & { metadata?: any; spec?: any; data?: Record<string, string> };

interface Published {
  version: number;
  key: string;
  /** Per pod uid: the pod's decision content and the version in which it last changed. */
  pods: Map<string, { key: number; version: number }>;
  /** The retained document was deleted (node gone); the version stays so a returning node moves on. */
  cleared?: boolean;
}

/**
 * Two 32-bit FNV-1a hashes folded into 52 bits: per-pod "did this decision change" for status
 * accounting (a collision, ~2^-52, would only count one pod as applied one version early).
 */
export function hash52(s: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  return (a >>> 0) * 0x100000 + (b >>> 12);
}

/** Pod decisions whose content did not change keep the version they were introduced in. */
function podVersions(
  pods: DecisionDocument['pods'],
  version: number,
  prev: Published | undefined,
): Map<string, { key: number; version: number }> {
  const out = new Map<string, { key: number; version: number }>();
  for (const p of pods) {
    const key = hash52(JSON.stringify(p)); // a number, not the JSON: 550,000 pods stay small
    const old = prev?.pods.get(p.uid);
    out.set(p.uid, { key, version: old && old.key === key ? old.version : version });
  }
  return out;
}

export class Controller {
  readonly strategies: Reflector<CpuBurstStrategy & KubeObject>;
  readonly nodes: Reflector<Obj>;
  readonly namespaces: Reflector<Obj>;
  readonly pods: Reflector<Obj>;
  readonly configMaps: Reflector<Obj>;
  readonly queue: WorkQueue;
  readonly recorder: EventRecorder;
  private leading = false;
  private clusterConfig: ClusterBurstConfig | null = null;
  private configError: string | undefined;
  private lastPlan: Plan | undefined;
  // Incremental planning: the pod-independent context, one part per node, and what is dirty.
  private ctx: PlanContext | undefined;
  private readonly parts = new Map<string, NodePart>();
  private readonly podsByNode = new Map<string, Map<string, PodLike>>();
  private readonly dirtyNodes = new Set<string>();
  private fullPlan = true;
  /** Per node: what the broker holds (retained) or we last published, whichever is newer. */
  private readonly published = new Map<string, Published>();
  private readonly acks = new Map<string, AckMessage>();
  private readonly statuses = new Map<string, StatusReport>();
  private readonly presence = new Map<string, boolean>();
  private readonly lastWritten = new Map<string, string>();
  private scheduleTimer: NodeJS.Timeout | undefined;
  private readonly now: () => Date;
  /** Called after each successful publish (benchmarks and tests measure latency with it). */
  onPublished?: (doc: DecisionDocument) => void;

  constructor(private readonly o: ControllerOptions) {
    this.now = o.now ?? (() => new Date());
    const { apis, log } = o;
    const common = {
      watch: apis.watch,
      log,
      resyncMs: o.resyncMs ?? 300_000,
      staleMs: o.staleMs ?? 0,
      watchTimeoutSeconds: o.watchTimeoutSeconds ?? 300,
    };
    const metric = (resource: string) => (what: string) => o.metrics.watchEvents.inc({ resource, what });
    this.strategies = new Reflector({
      ...common,
      resource: 'cpuburststrategies',
      path: `/apis/${CRD_GROUP}/${CRD_VERSION}/${CRD_PLURAL}`,
      list: () =>
        apis.custom.listClusterCustomObject({ group: CRD_GROUP, version: CRD_VERSION, plural: CRD_PLURAL }),
      onMetric: metric('cpuburststrategies'),
    });
    this.nodes = new Reflector<Obj>({
      ...common,
      resource: 'nodes',
      path: '/api/v1/nodes',
      list: () => apis.core.listNode() as any,
      onMetric: metric('nodes'),
      transform: slimMeta,
    });
    this.namespaces = new Reflector<Obj>({
      ...common,
      resource: 'namespaces',
      path: '/api/v1/namespaces',
      list: () => apis.core.listNamespace() as any,
      onMetric: metric('namespaces'),
      transform: slimMeta,
    });
    this.pods = new Reflector<Obj>({
      ...common,
      resource: 'pods',
      path: '/api/v1/pods',
      list: () => apis.core.listPodForAllNamespaces() as any,
      onMetric: metric('pods'),
      // The biggest cache by far: slim pods, and the initial state streamed (watch-list), not one list.
      transform: slimPod,
      watchList: o.watchList ?? true,
    });
    const fieldSelector = `metadata.name=${o.configMapName}`;
    this.configMaps = new Reflector<Obj>({
      ...common,
      resource: 'configmaps',
      path: `/api/v1/namespaces/${o.configMapNamespace}/configmaps`,
      query: { fieldSelector },
      list: () =>
        apis.core.listNamespacedConfigMap({ namespace: o.configMapNamespace, fieldSelector }) as any,
      onMetric: metric('configmaps'),
    });

    this.queue = new WorkQueue((key) => this.reconcile(key), {
      // Node publishes wait for the broker's PUBACK: enough of them in flight to fill the pipe.
      concurrency: 32,
      baseDelayMs: 50,
      maxDelayMs: 5_000,
      onDepth: (d) => o.metrics.queueDepth.set(d),
      onRetry: (key, attempt, delayMs, err) => {
        o.metrics.queueRetries.inc();
        log.warn('Reconcile failed, requeued', {
          key,
          attempt,
          retryInMs: delayMs,
          error: (err as Error).message,
        });
      },
    });
    this.recorder = new EventRecorder({
      send: (e) => createEvent(apis, e, o.identity, o.configMapNamespace),
      log,
      onResult: (r) => o.metrics.events.inc({ result: r }),
    });

    const labelsChanged = (obj: Obj, old?: Obj) =>
      !old || canonical(obj.metadata?.labels ?? {}) !== canonical(old.metadata?.labels ?? {});
    const replanAll = () => {
      this.fullPlan = true;
      this.queue.add('plan');
    };
    this.strategies.on('change', (type: string, obj: Obj, old?: Obj) => {
      if (type === 'MODIFIED' && old && old.metadata?.generation === obj.metadata?.generation)
        this.queue.add(`strategy/${obj.metadata?.name}`);
      else replanAll();
    });
    this.nodes.on('change', (type: string, obj: Obj, old?: Obj) => {
      if (type !== 'MODIFIED' || labelsChanged(obj, old)) replanAll();
    });
    this.namespaces.on('change', (type: string, obj: Obj, old?: Obj) => {
      if (type !== 'MODIFIED' || labelsChanged(obj, old)) replanAll();
    });
    this.pods.on('change', (type: string, obj: Obj, old?: Obj) => {
      const key = `${obj.metadata?.namespace}/${obj.metadata?.name}`;
      const from = old?.spec?.nodeName as string | undefined;
      const to = obj.spec?.nodeName as string | undefined;
      if (from) {
        this.podsByNode.get(from)?.delete(key);
        this.dirtyNodes.add(from);
      }
      if (to && type !== 'DELETED') {
        let m = this.podsByNode.get(to);
        if (!m) {
          m = new Map();
          this.podsByNode.set(to, m);
        }
        m.set(key, obj as PodLike);
        this.dirtyNodes.add(to);
      } else if (to) {
        this.podsByNode.get(to)?.delete(key);
        this.dirtyNodes.add(to);
      }
      this.queue.add('plan');
    });
    this.configMaps.on('change', () => this.queue.add('configmap'));
    for (const r of this.reflectors())
      r.on('synced', () => this.queue.add(r === this.configMaps ? 'configmap' : 'plan'));
  }

  private reflectors(): Reflector<any>[] {
    return [this.strategies, this.nodes, this.namespaces, this.pods, this.configMaps];
  }

  get synced(): boolean {
    return this.reflectors().every((r) => r.synced);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  get plan(): Plan | undefined {
    return this.lastPlan;
  }

  /** The ConfigMap config in force (the last good one), null = built-in defaults. */
  get clusterConfigInUse(): ClusterBurstConfig | null {
    return this.clusterConfig;
  }

  start(): void {
    for (const r of this.reflectors()) r.start();
    // Schedule windows open and close with time alone: re-plan everything when any strategy has one.
    this.scheduleTimer = setInterval(() => {
      if ([...this.strategies.cache.values()].some((s) => s.spec?.schedule)) {
        this.fullPlan = true;
        this.queue.add('plan');
      }
    }, this.o.scheduleCheckMs ?? 30_000);
    this.scheduleTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.scheduleTimer) clearInterval(this.scheduleTimer);
    for (const r of this.reflectors()) r.stop();
    await this.queue.shutdown();
  }

  /** Leadership changes: only the leader publishes, writes status and records Events. */
  setLeader(leading: boolean): void {
    this.leading = leading;
    this.o.metrics.leader.set(leading ? 1 : 0);
    if (leading) {
      this.queue.add('configmap');
      this.fullPlan = true;
      this.queue.add('plan');
    }
  }

  /** After a broker reconnect the broker may have lost retained documents: republish everything. */
  onBrokerReconnected(): void {
    for (const p of this.published.values()) p.key = '';
    for (const n of this.lastPlan?.nodes.keys() ?? []) this.queue.add(`node/${n}`);
  }

  onRetainedDecision(node: string, doc: DecisionDocument | null): void {
    if (!doc) return;
    const cur = this.published.get(node);
    if (cur && cur.version >= doc.version) return;
    // A standby sees every document the leader publishes (550,000 pods per round at scale): it keeps
    // the version and content digest, not per-pod versions. Those only refine status accounting (a
    // pod missing from the map counts from the document's version) and are rebuilt on publish.
    this.published.set(node, {
      version: doc.version,
      key: contentKey(doc),
      pods: this.leading ? podVersions(doc.pods, doc.version, cur) : new Map(),
    });
    if (this.leading) this.queue.add(`node/${node}`);
  }

  onAgentMessage(m: AgentMessage): void {
    this.o.metrics.agentMessages.inc({ kind: m.kind, result: 'valid' });
    if (m.kind === 'ack') {
      this.o.metrics.acks.inc({ result: m.value.result });
      const prev = this.acks.get(m.node);
      if (!prev || prev.version <= m.value.version) this.acks.set(m.node, m.value);
      for (const e of m.value.errors) this.podEvent(e.uid, e.namespace, e.name, e.reason, e.message);
    } else if (m.kind === 'status') {
      const prev = this.statuses.get(m.node);
      if (!prev || prev.appliedVersion <= m.value.appliedVersion) this.statuses.set(m.node, m.value);
      for (const p of m.value.pods)
        if (p.phase === 'Failed')
          this.podEvent(p.uid, p.namespace, p.name, p.reason ?? 'ApplyFailed', p.message ?? '');
    } else if (m.kind === 'presence') {
      if (this.presence.get(m.node) !== m.value.online)
        this.o.log.info(m.value.online ? 'Agent online' : 'Agent offline', { node: m.node });
      this.presence.set(m.node, m.value.online);
    } else {
      this.o.log.debug('Agent reported', { node: m.node, kind: m.kind });
      return;
    }
    this.statusesDirty();
  }

  /** Agent feedback and publishes move strategy status: recompute it at most every STATUS_THROTTLE_MS. */
  private statusesDirty(): void {
    for (const name of this.lastPlan?.strategies.keys() ?? [])
      this.queue.addThrottled(`strategy/${name}`, STATUS_THROTTLE_MS);
  }

  onInvalidAgentMessage(kind: string): void {
    this.o.metrics.agentMessages.inc({ kind, result: 'invalid' });
  }

  private podEvent(
    uid: string,
    namespace: string | undefined,
    name: string | undefined,
    reason: string,
    message: string,
  ) {
    if (!this.leading) return;
    let ns = namespace;
    let nm = name;
    if (!ns || !nm) {
      for (const p of this.pods.cache.values())
        if (p.metadata?.uid === uid) {
          ns = p.metadata.namespace;
          nm = p.metadata.name;
          break;
        }
    }
    if (!ns || !nm) return;
    this.recordEvent({
      target: { apiVersion: 'v1', kind: 'Pod', name: nm, namespace: ns, uid },
      type: 'Warning',
      reason,
      message,
    });
  }

  private recordEvent(e: EventInput): void {
    if (this.leading) this.recorder.record(e);
  }

  feedback(node: string): NodeFeedback {
    const f: NodeFeedback = {};
    const p = this.published.get(node);
    if (p) {
      f.published = p.version;
      f.podVersion = (uid) => p.pods.get(uid)?.version;
    }
    const a = this.acks.get(node);
    if (a) f.ack = a;
    const s = this.statuses.get(node);
    if (s) f.status = s;
    const online = this.presence.get(node);
    if (online !== undefined) f.agentOnline = online;
    return f;
  }

  private async reconcile(key: string): Promise<void> {
    const [controller, name] = key.includes('/')
      ? [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)]
      : [key, ''];
    const log = this.o.log.child({ controller, name: name || undefined, reconcileID: randomUUID() });
    const end = this.o.metrics.reconcileDuration.startTimer({ controller });
    try {
      let result = 'success';
      if (controller === 'plan') await this.reconcilePlan(log);
      else if (controller === 'configmap') this.reconcileConfigMap(log);
      else if (controller === 'node') result = await this.reconcileNode(name, log);
      else if (controller === 'strategy') result = await this.reconcileStrategy(name, log);
      this.o.metrics.reconcileTotal.inc({ controller, result });
    } catch (err) {
      this.o.metrics.reconcileTotal.inc({ controller, result: 'error' });
      this.o.metrics.reconcileErrors.inc({ controller });
      throw err;
    } finally {
      end();
    }
  }

  private reconcileConfigMap(log: Logger): void {
    if (!this.configMaps.synced) return;
    const cm = this.configMaps.cache.get(`${this.o.configMapNamespace}/${this.o.configMapName}`);
    const r = parseConfigMapData(cm?.data);
    if (!r.ok) {
      this.o.metrics.configErrors.inc();
      const kept = this.clusterConfig ? 'the previous configuration' : 'the built-in defaults';
      if (this.configError !== r.error)
        log.error('Rejected ConfigMap, keeping the previous configuration', {
          namespace: this.o.configMapNamespace,
          name: this.o.configMapName,
          error: r.error,
        });
      this.configError = r.error;
      if (cm)
        this.recordEvent({
          target: {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            name: this.o.configMapName,
            namespace: this.o.configMapNamespace,
            uid: cm.metadata?.uid,
          },
          type: 'Warning',
          reason: 'InvalidConfig',
          message: `${r.error}; keeping ${kept}`,
        });
      return;
    }
    this.configError = undefined;
    const next = r.present ? r.config : null;
    if (canonical(next) !== canonical(this.clusterConfig)) {
      log.info('Loaded ConfigMap', {
        namespace: this.o.configMapNamespace,
        name: this.o.configMapName,
        present: r.present,
        nodeStrategies: next?.nodeStrategies.length ?? 0,
      });
      this.clusterConfig = next;
      this.fullPlan = true;
      this.queue.add('plan');
    }
  }

  private async reconcilePlan(log: Logger): Promise<void> {
    // A standby does not plan: taking the lead re-plans everything anyway (setLeader), and at 550,000
    // pods a plan kept warm costs hundreds of MB and a re-plan per leader change it cannot publish.
    if (!this.synced || !this.leading) return;
    let recomputed: string[];
    if (this.fullPlan || !this.ctx) {
      this.fullPlan = false;
      this.dirtyNodes.clear();
      this.ctx = planContext({
        strategies: [...this.strategies.cache.values()],
        clusterConfig: this.clusterConfig,
        nodes: [...this.nodes.cache.values()],
        namespaces: [...this.namespaces.cache.values()],
        now: this.now(),
      });
      this.parts.clear();
      // Let the old plan go now rather than after the new one is built: holding both doubles the
      // peak at 550,000 pods. Node and strategy reconciles skip until the new plan enqueues them.
      this.lastPlan = undefined;
      recomputed = [...this.ctx.nodeLabels.keys()];
    } else {
      recomputed = [...this.dirtyNodes].filter((n) => this.ctx!.nodeLabels.has(n));
      this.dirtyNodes.clear();
    }
    // Big clusters: plan in slices and let the event loop breathe between them (watch events, MQTT
    // acks and Lease renewals must not wait seconds behind a full re-plan).
    const ctx = this.ctx;
    let sliceStart = performance.now();
    for (const node of recomputed) {
      const part = planNode(ctx, node, this.podsByNode.get(node)?.values() ?? []);
      contentKey(part.content); // memoised: the hash is taken here, in the slice, not later in one go
      this.parts.set(node, part);
      if (performance.now() - sliceStart > PLAN_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        sliceStart = performance.now();
      }
    }
    if (ctx !== this.ctx) return; // a newer full plan started meanwhile; it finishes the job
    const p = mergeParts(ctx, this.parts.values());
    this.lastPlan = p;
    let changed = 0;
    for (const node of recomputed) {
      const content = p.nodes.get(node);
      if (content && this.published.get(node)?.key !== contentKey(content)) {
        changed++;
        this.queue.add(`node/${node}`);
      }
    }
    // Nodes gone from the API whose retained document is still on the broker.
    if (this.leading)
      for (const [node, pub] of this.published)
        if (!pub.cleared && !p.nodes.has(node)) this.queue.add(`node/${node}`);
    for (const name of p.strategies.keys()) this.queue.add(`strategy/${name}`);
    for (const node of recomputed)
      for (const i of this.parts.get(node)!.podIssues)
        this.recordEvent({
          target: { apiVersion: 'v1', kind: 'Pod', name: i.name, namespace: i.namespace, uid: i.uid },
          type: i.type,
          reason: i.reason,
          message: i.message,
        });
    log.debug('Planned', { nodes: recomputed.length, strategies: p.strategies.size, changedNodes: changed });
  }

  private async reconcileNode(node: string, log: Logger): Promise<string> {
    if (!this.leading || !this.lastPlan) return 'skipped';
    const content: NodeContent | undefined = this.lastPlan.nodes.get(node);
    if (!content) return this.clearGoneNode(node, log);
    const key = contentKey(content);
    const prev = this.published.get(node);
    if (prev?.key === key) return 'unchanged';
    const version = nextVersion(prev?.version ?? 0);
    const doc: DecisionDocument = {
      apiVersion: PROTOCOL_API_VERSION,
      kind: 'NodeDecisions',
      node,
      version,
      generatedAt: this.now().toISOString(),
      operator: this.o.identity,
      nodeConfig: content.nodeConfig ?? {
        sharePoolThresholdPercent: DEFAULT_FULL_CONFIG.sharePoolThresholdPercent,
      },
      pods: content.pods,
      excludedPods: content.excludedPods,
    };
    try {
      await this.o.publisher.publish(doc);
    } catch (err) {
      this.o.metrics.decisionsPublished.inc({ result: 'error' });
      throw err;
    }
    this.published.set(node, { version, key, pods: podVersions(doc.pods, version, prev) });
    this.o.metrics.decisionsPublished.inc({ result: 'success' });
    log.info('Published decisions', { node, version, pods: doc.pods.length });
    this.onPublished?.(doc);
    this.statusesDirty();
    return 'success';
  }

  /**
   * A node deleted from the API loses its retained document, but only once no pod is bound to it any
   * more (while pods remain, their last document stays for the agent). The version is kept.
   */
  private async clearGoneNode(node: string, log: Logger): Promise<string> {
    const prev = this.published.get(node);
    if (!prev || prev.cleared) return 'skipped';
    if (this.nodes.cache.has(node) || (this.podsByNode.get(node)?.size ?? 0) > 0) return 'skipped';
    try {
      await this.o.publisher.clear(node);
    } catch (err) {
      this.o.metrics.decisionsPublished.inc({ result: 'error' });
      throw err;
    }
    this.published.set(node, { version: prev.version, key: '', pods: new Map(), cleared: true });
    log.info('Cleared retained decisions of a deleted node', { node, version: prev.version });
    return 'cleared';
  }

  private async reconcileStrategy(name: string, log: Logger): Promise<string> {
    if (!this.leading || !this.lastPlan) return 'skipped';
    const cr = this.strategies.cache.get(name);
    const p = this.lastPlan.strategies.get(name);
    if (!cr || !p) return 'skipped';
    if ((cr.metadata.generation ?? 0) !== p.generation) {
      this.queue.add('plan'); // the plan is older than the object; it will enqueue us again
      return 'stale';
    }
    const status = computeStatus(p, (n) => this.feedback(n), cr.status?.conditions, this.now());
    const c = canonical(status);
    if (sameStatus(cr.status, status) || this.lastWritten.get(name) === `${cr.metadata.resourceVersion}|${c}`)
      return 'unchanged';
    await patchStrategyStatus(this.o.apis, name, status);
    this.lastWritten.set(name, `${cr.metadata.resourceVersion}|${c}`);
    log.info(`Patched ${CRD_KIND} status`, {
      [CRD_KIND]: { name },
      ready: status.conditions?.[0]?.status,
      reason: status.conditions?.[0]?.reason,
      podsMatched: status.podsMatched,
      podsApplied: status.podsApplied,
    });
    return 'success';
  }
}
