// Why a ServiceAccount token or a client certificate was refused: one label of
// cpuburst_broker_auth_refusals_total, one `reason` field of the "Refused connection" log line, and
// the CONNACK code the client sees (credential problems 4 / 0x86, policy problems 5 / 0x87).
export const REFUSAL_REASONS = [
  'expired',
  'not_yet_valid',
  'bad_audience',
  'unknown_issuer',
  'bad_signature',
  'unknown_key',
  'malformed',
  'pod_gone',
  'serviceaccount_not_allowed',
  'node_mismatch',
  'node_unknown',
  'review_failed',
  'cert_invalid',
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const POLICY: ReadonlySet<RefusalReason> = new Set([
  'pod_gone',
  'serviceaccount_not_allowed',
  'node_mismatch',
  'node_unknown',
]);

/** MQTT 3.1.1 CONNACK return code (aedes sends MQTT 5 clients 0x86 for 4 and 0x87 for 5). */
export function connackCode(reason: RefusalReason): 4 | 5 {
  return POLICY.has(reason) ? 5 : 4;
}

export class Refusal extends Error {
  constructor(
    readonly reason: RefusalReason,
    detail: string,
  ) {
    super(detail);
  }
}
