export { type KubeletApi, kubeletApi, loadKubeConfig } from './api.js';
export { CgroupFs, cleanStaleTrees, destroyTreeSync } from './cgroupfs.js';
export {
  type ContainerRuntimeInfo,
  type MiniKubelet,
  type MiniKubeletOptions,
  type PodRuntimeInfo,
  startMiniKubelet,
} from './kubelet.js';
export * from './resources.js';
