// Decoding MQTT payloads: parse + validate in one step, with a reason a log line can carry.
import { type Validator, validate } from './schemas.js';
import type { AckMessage, Capabilities, DecisionDocument, Presence, StatusReport } from './types.js';

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Payloads above this are refused before JSON.parse (a decision document for 1,000 pods is ~400 KiB). */
export const MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;

function decodeWith<T>(v: Validator<T>, payload: Buffer | string): Decoded<T> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  if (size > MAX_PAYLOAD_BYTES)
    return { ok: false, error: `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString());
  } catch (err) {
    return { ok: false, error: `invalid JSON: ${(err as Error).message}` };
  }
  if (!v(parsed)) return { ok: false, error: `schema violation: ${v.errors()}` };
  return { ok: true, value: parsed };
}

export const decode = {
  decisions: (p: Buffer | string) => decodeWith<DecisionDocument>(validate.decisions, p),
  ack: (p: Buffer | string) => decodeWith<AckMessage>(validate.ack, p),
  status: (p: Buffer | string) => decodeWith<StatusReport>(validate.status, p),
  capabilities: (p: Buffer | string) => decodeWith<Capabilities>(validate.capabilities, p),
  presence: (p: Buffer | string) => decodeWith<Presence>(validate.presence, p),
};

export function encode(msg: object): Buffer {
  return Buffer.from(JSON.stringify(msg));
}
