// A kubeconfig for the emulator, so real kubectl and client-node `loadFromFile` can talk to it.
import YAML from 'yaml';

export interface KubeconfigOptions {
  server: string;
  token?: string;
  /** PEM CA for TLS servers; absent with TLS → insecure-skip-tls-verify. */
  caPem?: string;
  namespace?: string;
  name?: string;
}

export function kubeconfigYaml(o: KubeconfigOptions): string {
  const name = o.name ?? 'devcluster';
  const cluster: Record<string, unknown> = { server: o.server };
  // client-node 1.4.0 refuses plain http unless skipTLSVerify is set, so http servers get the flag too.
  if (o.server.startsWith('https:') && o.caPem)
    cluster['certificate-authority-data'] = Buffer.from(o.caPem).toString('base64');
  else cluster['insecure-skip-tls-verify'] = true;
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster }],
    users: [{ name, user: o.token ? { token: o.token } : { username: 'devcluster' } }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: o.namespace ?? 'default' } }],
    'current-context': name,
    preferences: {},
  });
}
