// The `tls-cert` authenticator: the identity of a TLS client comes from its certificate, verified
// against --tls-ca during the handshake. Subject CN `agent:<node>` or a SAN URI
// `cpuburst://agent/<node>` → `agent:<node>`; CN exactly `operator` → `operator` only with
// --tls-operator-cert. Other certificates are left to the rest of the chain.
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { identities } from '../../protocol/topics.js';
import type { RefusalReason } from './refusals.js';

export interface PeerInfo {
  authorized: boolean;
  authorizationError?: string;
  cert: PeerCertificate;
}

export type CertVerdict =
  | { result: 'ignore' }
  | { result: 'allow'; identity: string; expiresAt?: number; subject: string }
  | { result: 'deny'; reason: RefusalReason; detail: string };

const SAN_AGENT = /^cpuburst:\/\/agent\/(.+)$/;

/** The peer certificate of a connection (TLS socket, or the TLS socket under a WSS upgrade). */
export function peerOf(...streams: unknown[]): PeerInfo | undefined {
  for (const s of streams) {
    const sock = s as Partial<TLSSocket> | undefined;
    if (typeof sock?.getPeerCertificate !== 'function') continue;
    const cert = sock.getPeerCertificate();
    if (!cert || Object.keys(cert).length === 0) return undefined;
    return {
      authorized: sock.authorized === true,
      authorizationError: sock.authorizationError ? String(sock.authorizationError) : undefined,
      cert,
    };
  }
  return undefined;
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? (v.length === 1 ? v[0] : undefined) : v;
}

export function checkCert(peer: PeerInfo | undefined, allowOperator: boolean): CertVerdict {
  if (!peer) return { result: 'ignore' };
  const cn = first(peer.cert.subject?.CN as string | string[] | undefined);
  const subject = cn ?? '(no CN)';
  if (!peer.authorized) {
    return {
      result: 'deny',
      reason: 'cert_invalid',
      detail: `client certificate ${subject} not trusted: ${peer.authorizationError ?? 'unknown error'}`,
    };
  }
  const uris = (peer.cert.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => SAN_AGENT.exec(s.slice(4))?.[1])
    .filter((n): n is string => n !== undefined);
  const nodes = new Set(uris);
  const cnNode = identities.agentNode(cn);
  if (cn?.startsWith(identities.agentPrefix) && !cnNode) {
    return { result: 'deny', reason: 'cert_invalid', detail: `certificate CN ${cn} names no valid node` };
  }
  if (cnNode) nodes.add(cnNode);
  const notAfter = peer.cert.valid_to ? Date.parse(peer.cert.valid_to) : Number.NaN;
  const expiresAt = Number.isNaN(notAfter) ? undefined : notAfter;
  if (nodes.size > 1) {
    return {
      result: 'deny',
      reason: 'cert_invalid',
      detail: `certificate names several nodes: ${[...nodes].join(', ')}`,
    };
  }
  if (nodes.size === 1) {
    const node = [...nodes][0]!;
    if (!identities.agentNode(identities.agent(node))) {
      return {
        result: 'deny',
        reason: 'cert_invalid',
        detail: `certificate names an invalid node ${JSON.stringify(node)}`,
      };
    }
    return { result: 'allow', identity: identities.agent(node), expiresAt, subject };
  }
  if (cn === identities.operator && allowOperator) {
    return { result: 'allow', identity: identities.operator, expiresAt, subject };
  }
  return { result: 'ignore' };
}
