// The mini-kubelet: turns the Pods bound to one node into real processes in real cgroups laid out
// exactly as the kubelet's cgroupfs driver does, reports their status, and cleans up on pod
// deletion, on stop, and (synchronously) on process exit.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig, V1Container, V1ContainerStatus, V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../../common/log.js';
import { allowPlainHttp, type KubeletApi, kubeletApi, loadKubeConfig, type WatchEvent } from './api.js';
import { CgroupFs, cleanStaleTrees } from './cgroupfs.js';
import {
  containerQuotaUs,
  cpuLimitMilli,
  cpuRequestMilli,
  podCgroupDir,
  podQuotaUs,
  type QosClass,
  qosClassOf,
  sharesFor,
} from './resources.js';
import {
  type ContainerMount,
  canIsolateMounts,
  type RunningContainer,
  startContainerProcess,
} from './runtime.js';
import { type PodVolumes, setUpPodVolumes } from './volumes.js';

export interface MiniKubeletOptions {
  /** Kubeconfig file or a loaded KubeConfig (ignored when `api` is given). */
  kubeconfig?: string | KubeConfig;
  api?: KubeletApi;
  node: string;
  /** Mount root with cpu/ and cpuacct/ (default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** Demo parent is `<parentBase>-<pid>`; stale `<parentBase>-<deadpid>` trees are removed at start. */
  parentBase?: string;
  fake?: boolean;
  /** Where container stdout/stderr go (one file per container). */
  logDir: string;
  nodeLabels?: Record<string, string>;
  resyncMs?: number;
  /** cpu.shares of the demo parent (default 16384: the demo node wins against host noise). */
  parentShares?: number;
  log?: Logger;
  /** Pod volumes go under <podsDir>/<uid>/volumes (default: a temp dir removed on stop). */
  podsDir?: string;
  /**
   * Bind volumeMounts at their mountPath in a private mount namespace per container (default: when
   * running as root with `unshare`). Without it containers find volumes through CPUBURST_VOLUME_<NAME>.
   */
  isolateMounts?: boolean;
}

export interface ContainerRuntimeInfo {
  name: string;
  id: string;
  /** Relative to a controller mount, e.g. cpuburst-demo-1/kubepods/burstable/pod<uid>/<id>. */
  cgroup: string;
  pid: number;
  quotaUs: number;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

export interface PodRuntimeInfo {
  uid: string;
  namespace: string;
  name: string;
  qosClass: QosClass;
  cgroup: string;
  quotaUs: number;
  containers: ContainerRuntimeInfo[];
  /** volume name → host directory (projected tokens, emptyDir, hostPath). */
  volumes: Record<string, string>;
}

export interface MiniKubelet {
  readonly node: string;
  readonly cgroups: CgroupFs;
  pods(): PodRuntimeInfo[];
  /** Resolves once the first list has been reconciled. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

interface PodState extends PodRuntimeInfo {
  procs: Map<string, RunningContainer>;
  statuses: Map<string, V1ContainerStatus>;
  startTime: Date;
  gone: boolean;
  vols?: PodVolumes;
  /** mount points this pod made on the host (removed, if empty, when it goes). */
  madeDirs: string[];
}

const newContainerId = (): string => randomBytes(32).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function containerArgv(c: V1Container): string[] {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  return argv.length > 0 ? argv : ['sleep', 'infinity'];
}

function containerEnv(c: V1Container, volumes: Map<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, dir] of volumes) env[volumeEnvName(name)] = dir;
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

/** CPUBURST_VOLUME_<NAME>: where a volume is on the host (kube-api-access → CPUBURST_VOLUME_KUBE_API_ACCESS). */
export function volumeEnvName(volume: string): string {
  return `CPUBURST_VOLUME_${volume.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** Creates the missing directories of `dir`; returns those it created, deepest last. */
function mkdirsRecorded(dir: string): string[] {
  const made: string[] = [];
  let d = path.resolve(dir);
  while (!fs.existsSync(d)) {
    made.unshift(d);
    d = path.dirname(d);
  }
  for (const m of made) fs.mkdirSync(m, { mode: 0o755 });
  return made;
}

export async function startMiniKubelet(opts: MiniKubeletOptions): Promise<MiniKubelet> {
  const node = opts.node;
  const log = opts.log ?? createLogger({ component: 'kubelet', node });
  const api =
    opts.api ??
    kubeletApi(
      typeof opts.kubeconfig === 'string'
        ? loadKubeConfig(opts.kubeconfig)
        : allowPlainHttp(opts.kubeconfig!),
    );
  const root = opts.cgroupRoot ?? '/sys/fs/cgroup';
  const base = opts.parentBase ?? 'cpuburst-demo';
  const fake = opts.fake ?? false;
  const stale = cleanStaleTrees(root, base, fake);
  if (stale.length > 0) log.info('Removed stale cgroup trees of an earlier run', { dirs: stale });
  const cg = new CgroupFs({ root, parent: `${base}-${process.pid}`, fake });
  cg.ensure('');
  for (const q of ['burstable', 'besteffort']) cg.ensure(q);
  // kubepods weighs like the node's allocatable CPUs (as the kubelet sets it); the demo parent gets
  // more, so the demo node is not starved by whatever else the host is running.
  cg.write('', 'cpu.shares', os.cpus().length * 1024);
  cg.write('besteffort', 'cpu.shares', 2);
  cg.writeParent('cpu.shares', opts.parentShares ?? 16384);
  fs.mkdirSync(opts.logDir, { recursive: true });
  const ownPodsDir = opts.podsDir === undefined;
  const podsDir = opts.podsDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `cpuburst-kubelet-${node}-`));
  fs.mkdirSync(podsDir, { recursive: true });
  const isolate = opts.isolateMounts ?? canIsolateMounts();

  // Last line of defence: whatever happens, no process and no cgroup of ours survives us.
  const onExit = () => {
    for (const p of state.values()) for (const r of p.procs.values()) r.kill();
    cg.destroyAll();
    for (const p of state.values()) p.vols?.stop();
    if (ownPodsDir) fs.rmSync(podsDir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  const state = new Map<string, PodState>();
  const chains = new Map<string, Promise<void>>();
  let stopped = false;
  let watchHandle: { abort(): void } | undefined;

  const serial = (uid: string, fn: () => Promise<void>): Promise<void> => {
    const next = (chains.get(uid) ?? Promise.resolve()).then(fn).catch((err: unknown) => {
      log.error('Pod sync failed', { uid, error: (err as Error).message });
    });
    chains.set(uid, next);
    return next;
  };

  // Events are best effort: a failed Event never fails a pod sync.
  const event = (
    p: { namespace: string; name: string; uid: string },
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ) => {
    api.podEvent(p, type, reason, message, node).catch((err: unknown) => {
      log.warn('Failed to record Event', {
        reason,
        pod: `${p.namespace}/${p.name}`,
        error: (err as Error).message,
      });
    });
  };

  const podPhase = (p: PodState): V1PodStatus['phase'] => {
    const st = [...p.statuses.values()];
    if (st.every((s) => s.state?.terminated)) {
      return st.every((s) => s.state?.terminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    return 'Running';
  };

  const pushStatus = async (p: PodState): Promise<void> => {
    if (p.gone || stopped) return;
    const statuses = [...p.statuses.values()];
    const ready = statuses.every((s) => s.ready);
    const phase = podPhase(p);
    const status: V1PodStatus = {
      phase,
      qosClass: p.qosClass,
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      startTime: p.startTime,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: p.startTime },
        { type: 'Initialized', status: 'True', lastTransitionTime: p.startTime },
        { type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: new Date() },
        { type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: new Date() },
      ],
      containerStatuses: statuses,
    };
    await api.patchPodStatus(p.namespace, p.name, status);
    log.info('Patched pod status', { pod: `${p.namespace}/${p.name}`, phase });
  };

  const startPod = async (pod: V1Pod): Promise<void> => {
    const uid = pod.metadata!.uid!;
    const containers = pod.spec?.containers ?? [];
    const qos =
      (pod.status?.qosClass as QosClass | undefined) ?? qosClassOf(containers.map((c) => c.resources ?? {}));
    const podRel = podCgroupDir(qos, uid);
    cg.ensure(podRel);
    const period = cg.periodUs(podRel);
    const limits = containers.map((c) => cpuLimitMilli(c.resources ?? {}));
    const podQuota = podQuotaUs(limits, period);
    const podShares = sharesFor(
      containers.reduce((a, c) => a + (cpuRequestMilli(c.resources ?? {}) ?? 0), 0),
    );
    // cgroup v1: a child's quota may not exceed its parent's, so the pod is set before its containers.
    if (podQuota > 0) cg.write(podRel, 'cpu.cfs_quota_us', podQuota);
    cg.write(podRel, 'cpu.shares', podShares);
    const p: PodState = {
      uid,
      namespace: pod.metadata!.namespace ?? 'default',
      name: pod.metadata!.name!,
      qosClass: qos,
      cgroup: path.join(cg.kubepodsRel, podRel),
      quotaUs: podQuota,
      containers: [],
      volumes: {},
      procs: new Map(),
      statuses: new Map(),
      startTime: new Date(),
      gone: false,
      madeDirs: [],
    };
    state.set(uid, p);
    // Volumes first, as the kubelet mounts them before it starts containers.
    p.vols = setUpPodVolumes({
      pod,
      podsDir,
      requestToken: api.requestToken?.bind(api),
      log,
      onError: (volume, message) =>
        event(p, 'Warning', 'FailedMount', `MountVolume.SetUp failed for volume "${volume}" : ${message}`),
    });
    p.volumes = Object.fromEntries(p.vols.dirs);
    await p.vols.ready;
    if (p.gone) return;
    for (const c of containers) {
      const id = newContainerId();
      const rel = path.join(podRel, id);
      cg.ensure(rel);
      const quota = containerQuotaUs(cpuLimitMilli(c.resources ?? {}), cg.periodUs(rel));
      if (quota > 0) cg.write(rel, 'cpu.cfs_quota_us', quota);
      cg.write(rel, 'cpu.shares', sharesFor(cpuRequestMilli(c.resources ?? {})));
      const mounts: ContainerMount[] = [];
      for (const m of c.volumeMounts ?? []) {
        const dir = p.vols.dirs.get(m.name);
        if (!dir) {
          log.warn('volumeMount names no volume of the pod; skipped', {
            pod: `${p.namespace}/${p.name}`,
            volume: m.name,
          });
          continue;
        }
        if (!isolate) continue;
        const hostPath = m.subPath ? path.join(dir, m.subPath) : dir;
        if (fs.statSync(hostPath, { throwIfNoEntry: false })?.isDirectory() === false) continue; // file subPaths: not supported
        p.madeDirs.push(...mkdirsRecorded(m.mountPath));
        mounts.push({ hostPath, mountPath: m.mountPath, readOnly: m.readOnly ?? false });
      }
      if ((c.volumeMounts ?? []).length > 0 && !isolate)
        log.warn('No mount namespaces (needs root and unshare): volumes are only at CPUBURST_VOLUME_<NAME>', {
          pod: `${p.namespace}/${p.name}`,
          container: c.name,
        });
      const proc = startContainerProcess({
        mounts,
        argv: containerArgv(c),
        env: containerEnv(c, p.vols.dirs),
        cwd: c.workingDir,
        cpuDir: cg.dir('cpu', rel),
        cpuacctDir: cg.dir('cpuacct', rel),
        logFile: path.join(opts.logDir, `${p.namespace}_${p.name}_${c.name}.log`),
      });
      const info: ContainerRuntimeInfo = {
        name: c.name,
        id,
        cgroup: path.join(cg.kubepodsRel, rel),
        pid: proc.pid,
        quotaUs: quota,
      };
      p.containers.push(info);
      p.procs.set(c.name, proc);
      const startedAt = new Date();
      p.statuses.set(c.name, {
        name: c.name,
        containerID: `containerd://${id}`,
        image: c.image ?? 'local',
        imageID: '',
        ready: true,
        restartCount: 0,
        started: true,
        state: { running: { startedAt } },
      });
      event(p, 'Normal', 'Started', `Started container ${c.name} (pid ${proc.pid}, cgroup ${info.cgroup})`);
      log.info('Started container', {
        pod: `${p.namespace}/${p.name}`,
        container: c.name,
        pid: proc.pid,
        quotaUs: quota,
      });
      void proc.exited.then((exit) => {
        info.exit = exit;
        if (p.gone) return;
        const exitCode = exit.code ?? 128 + 9;
        p.statuses.set(c.name, {
          ...p.statuses.get(c.name)!,
          ready: false,
          started: false,
          state: {
            terminated: {
              exitCode,
              signal: undefined,
              reason: exitCode === 0 ? 'Completed' : 'Error',
              startedAt,
              finishedAt: new Date(),
              containerID: `containerd://${id}`,
            },
          },
        });
        log.info('Container exited', { pod: `${p.namespace}/${p.name}`, container: c.name, exitCode });
        void serial(uid, () => pushStatus(p));
      });
    }
    await pushStatus(p);
  };

  const killPod = async (uid: string): Promise<void> => {
    const p = state.get(uid);
    if (!p) return;
    for (const c of p.containers) if (!c.exit) event(p, 'Normal', 'Killing', `Stopping container ${c.name}`);
    p.gone = true;
    for (const r of p.procs.values()) r.kill('SIGKILL');
    await Promise.race([Promise.all([...p.procs.values()].map((r) => r.exited)), sleep(3000)]);
    const left = cg.remove(podCgroupDir(p.qosClass, uid));
    if (left.length > 0) log.error('Could not remove pod cgroups', { uid, dirs: left });
    p.vols?.stop(); // no more token refreshes; the pod's volume dirs go
    removeMadeDirs(p);
    state.delete(uid);
    log.info('Killed pod', { pod: `${p.namespace}/${p.name}`, uid });
  };

  // Host mount points a pod created: removed when empty and no other live pod made them too.
  const removeMadeDirs = (p: PodState) => {
    const inUse = new Set([...state.values()].filter((o) => o !== p).flatMap((o) => o.madeDirs));
    for (const d of [...p.madeDirs].reverse()) {
      if (inUse.has(d)) continue;
      try {
        fs.rmdirSync(d);
      } catch {
        // not empty (someone else wrote there) or already gone
      }
    }
    p.madeDirs = [];
  };

  const syncPod = (type: WatchEvent | 'SYNC', pod: V1Pod): Promise<void> => {
    const uid = pod.metadata?.uid;
    if (!uid || stopped) return Promise.resolve();
    return serial(uid, async () => {
      if (type === 'DELETED') return killPod(uid);
      if (pod.metadata?.deletionTimestamp) {
        await killPod(uid);
        await api.deletePod(pod.metadata.namespace ?? 'default', pod.metadata.name!, uid);
        return;
      }
      if (state.has(uid)) return;
      const phase = pod.status?.phase;
      if (phase === 'Succeeded' || phase === 'Failed') return; // finished before we (re)started
      await startPod(pod);
    });
  };

  const resync = async (pods: V1Pod[]): Promise<void> => {
    const seen = new Set(pods.map((p) => p.metadata?.uid));
    const jobs = pods.map((p) => syncPod('SYNC', p));
    for (const uid of state.keys()) if (!seen.has(uid)) jobs.push(serial(uid, () => killPod(uid)));
    await Promise.all(jobs);
  };

  let markReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    markReady = r;
  });

  const loop = async (): Promise<void> => {
    let registered = false;
    while (!stopped) {
      try {
        if (!registered) {
          await api.registerNode(node, opts.nodeLabels ?? {});
          registered = true;
          log.info('Registered node', { node });
        }
        const { pods, resourceVersion } = await api.listPods(node);
        await resync(pods);
        markReady();
        await new Promise<void>((resolve, reject) => {
          api
            .watchPods(
              node,
              resourceVersion,
              (type, pod) => {
                if (type === 'ERROR') {
                  // e.g. 410 Gone: the watch ends and we re-list.
                  watchHandle?.abort();
                  resolve();
                  return;
                }
                if (type !== 'BOOKMARK') void syncPod(type, pod);
              },
              () => resolve(),
            )
            .then((h) => {
              watchHandle = h;
              if (stopped) h.abort();
            }, reject);
        });
      } catch (err) {
        if (!stopped) log.warn('Pod list/watch failed; retrying', { error: (err as Error).message });
      }
      if (!stopped) await sleep(500);
    }
  };
  const loopDone = loop();

  // Periodic resync: a missed watch event is repaired within resyncMs.
  const resyncTimer = setInterval(() => {
    api.listPods(node).then(
      ({ pods }) => resync(pods),
      () => {},
    );
  }, opts.resyncMs ?? 5000);
  resyncTimer.unref();

  return {
    node,
    cgroups: cg,
    ready,
    pods: () =>
      [...state.values()].map(
        ({ procs: _p, statuses: _s, startTime: _t, gone: _g, vols: _v, madeDirs: _m, ...info }) => ({
          ...info,
          containers: info.containers.map((c) => ({ ...c })),
          volumes: { ...info.volumes },
        }),
      ),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(resyncTimer);
      watchHandle?.abort();
      await Promise.all([...state.keys()].map((uid) => serial(uid, () => killPod(uid))));
      await Promise.race([loopDone, sleep(2000)]);
      const left = cg.destroyAll();
      if (left.length > 0) log.error('Could not remove demo cgroups', { dirs: left });
      process.off('exit', onExit);
      if (ownPodsDir) fs.rmSync(podsDir, { recursive: true, force: true });
      log.info('Mini-kubelet stopped', { node });
    },
  };
}
