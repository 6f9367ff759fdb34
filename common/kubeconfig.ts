// Loading a kubeconfig the same way in every component that talks to the Kubernetes API.
import { KubeConfig } from '@kubernetes/client-node';

/** --kubeconfig when given, else in-cluster when running in a pod, else the default chain. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  return allowPlainHttp(kc);
}

/**
 * client-node 1.4 refuses http:// servers unless skipTLSVerify is set, though there is no TLS to
 * verify (kubectl accepts them). Local API servers (devcluster, kubectl proxy) are plain http.
 */
export function allowPlainHttp(kc: KubeConfig): KubeConfig {
  const clusters = kc.clusters.map((c) =>
    c.server.startsWith('http://') ? { ...c, skipTLSVerify: true } : c,
  );
  kc.loadFromOptions({
    clusters,
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.getCurrentContext(),
  });
  return kc;
}
