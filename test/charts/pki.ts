// A throwaway PKI made with openssl for the chart's TLS tests: a CA, the broker's server certificate
// for its Service names (what cert-manager or the user puts in the tls Secret), and client
// certificates such as the per-node agent certificates of agent.mtls.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { K8sObject } from './helm.js';

export const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A self-signed CA `<name>.crt` / `<name>.key` in `dir`. */
export function makeCa(dir: string, name = 'ca'): void {
  mkdirSync(dir, { recursive: true });
  openssl(dir, [
    'req',
    '-x509',
    ...EC,
    '-days',
    '2',
    '-subj',
    `/CN=cpuburst-test-${name}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  ]);
}

/** Signs `<out>.crt` (key `<out>.key`) for `subject` with the CA `ca`, with the given extensions. */
export function signCert(dir: string, out: string, subject: string, ext: string, ca = 'ca'): void {
  openssl(dir, ['req', ...EC, '-subj', subject, '-keyout', `${out}.key`, '-out', `${out}.csr`]);
  writeFileSync(path.join(dir, `${out}.ext`), ext);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${out}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${out}.ext`,
    '-out',
    `${out}.crt`,
  ]);
}

/**
 * CA + broker certificate for Service `svc` in `namespace` (and 127.0.0.1), returned as the
 * kubernetes.io/tls Secret `secretName` with tls.crt, tls.key and ca.crt.
 */
export function brokerPki(dir: string, svc: string, namespace: string, secretName: string): K8sObject {
  makeCa(dir);
  signCert(
    dir,
    'tls',
    `/CN=${svc}`,
    `subjectAltName=DNS:${svc},DNS:${svc}.${namespace},DNS:${svc}.${namespace}.svc,IP:127.0.0.1\n`,
  );
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: secretName, namespace, labels: {} },
    data: Object.fromEntries(
      ['tls.crt', 'tls.key', 'ca.crt'].map((k) => [k, readFileSync(path.join(dir, k)).toString('base64')]),
    ),
  } as unknown as K8sObject;
}

/** A TLS client certificate `<out>.crt`/`<out>.key` with subject CN `cn`, signed by `ca`. */
export function clientCert(dir: string, out: string, cn: string, ca = 'ca'): void {
  signCert(dir, out, `/CN=${cn}`, 'extendedKeyUsage=clientAuth\n', ca);
}
