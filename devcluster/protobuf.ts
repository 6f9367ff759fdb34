// kubectl 1.32's typed clients (`kubectl create namespace|configmap|secret|serviceaccount|token`,
// `kubectl auth can-i|whoami`) POST Kubernetes protobuf. This decodes just those kinds (the `k8s\0` envelope, ObjectMeta and their
// data fields) into JSON objects; anything else is answered with 415 by the caller.
import { errors } from './errors.js';

type Fields = Map<number, Array<Buffer | bigint>>;

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw errors.badRequest('truncated protobuf varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [result, pos];
    shift += 7n;
  }
}

function parse(buf: Buffer): Fields {
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    let val: Buffer | bigint;
    if (wire === 0) [val, pos] = readVarint(buf, pos);
    else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      val = buf.subarray(p2, p2 + Number(len));
      pos = p2 + Number(len);
    } else if (wire === 1) {
      val = buf.subarray(pos, pos + 8);
      pos += 8;
    } else if (wire === 5) {
      val = buf.subarray(pos, pos + 4);
      pos += 4;
    } else throw errors.badRequest(`unsupported protobuf wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(val);
    out.set(field, list);
  }
  return out;
}

const str = (f: Fields, n: number) => {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? v.toString('utf8') : undefined;
};
const strs = (f: Fields, n: number) =>
  (f.get(n) ?? []).filter(Buffer.isBuffer).map((b) => (b as Buffer).toString('utf8'));
const bool = (f: Fields, n: number) => {
  const v = f.get(n)?.[0];
  return typeof v === 'bigint' ? v !== 0n : undefined;
};
function map(f: Fields, n: number, bytes = false): Record<string, string> | undefined {
  const entries = f.get(n);
  if (!entries) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    const kv = parse(e as Buffer);
    const v = kv.get(2)?.[0] as Buffer | undefined;
    out[str(kv, 1) ?? ''] = v ? (bytes ? v.toString('base64') : v.toString('utf8')) : '';
  }
  return out;
}

function objectMeta(buf: Buffer | undefined): Record<string, unknown> {
  if (!buf) return {};
  const f = parse(buf);
  const md: Record<string, unknown> = {};
  // gogo-protobuf writes empty strings too: empty means unset.
  const set = (k: string, v: unknown) => {
    if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)) md[k] = v;
  };
  set('name', str(f, 1));
  set('generateName', str(f, 2));
  set('namespace', str(f, 3));
  set('resourceVersion', str(f, 6));
  set('labels', map(f, 11));
  set('annotations', map(f, 12));
  set('finalizers', strs(f, 14));
  return md;
}

function drop<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined || o[k] === '') delete o[k];
  return o;
}

export function decodeK8sProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || body.subarray(0, 4).toString('latin1') !== 'k8s\0')
    throw errors.badRequest('protobuf body without the k8s envelope');
  const unknown = parse(body.subarray(4));
  const typeMeta = parse((unknown.get(1)?.[0] as Buffer) ?? Buffer.alloc(0));
  const apiVersion = str(typeMeta, 1) ?? '';
  const kind = str(typeMeta, 2) ?? '';
  const raw = parse((unknown.get(2)?.[0] as Buffer) ?? Buffer.alloc(0));
  const metadata = objectMeta(raw.get(1)?.[0] as Buffer | undefined);
  const base = { apiVersion, kind, metadata };
  switch (`${apiVersion}/${kind}`) {
    case 'v1/Namespace': {
      const spec = raw.get(2)?.[0] as Buffer | undefined;
      const fin = spec ? strs(parse(spec), 1) : [];
      return fin.length ? { ...base, spec: { finalizers: fin } } : base;
    }
    case 'v1/ConfigMap':
      return drop({ ...base, data: map(raw, 2), binaryData: map(raw, 3, true), immutable: bool(raw, 4) });
    case 'v1/Secret':
      return drop({
        ...base,
        data: map(raw, 2, true),
        type: str(raw, 3),
        stringData: map(raw, 4),
        immutable: bool(raw, 5),
      });
    case 'authorization.k8s.io/v1/SelfSubjectAccessReview':
    case 'authorization.k8s.io/v1/SubjectAccessReview': {
      // `kubectl auth can-i`: spec { resourceAttributes(1), nonResourceAttributes(2), user(3), groups(4) }
      const spec = parse((raw.get(2)?.[0] as Buffer) ?? Buffer.alloc(0));
      const ra = spec.get(1)?.[0] as Buffer | undefined;
      const na = spec.get(2)?.[0] as Buffer | undefined;
      const out: Record<string, unknown> = {};
      if (ra) {
        const f = parse(ra);
        out.resourceAttributes = drop({
          namespace: str(f, 1),
          verb: str(f, 2),
          group: str(f, 3),
          version: str(f, 4),
          resource: str(f, 5),
          subresource: str(f, 6),
          name: str(f, 7),
        });
      }
      if (na) {
        const f = parse(na);
        out.nonResourceAttributes = drop({ path: str(f, 1), verb: str(f, 2) });
      }
      if (kind === 'SubjectAccessReview') {
        out.user = str(spec, 3);
        out.groups = strs(spec, 4);
      }
      return { ...base, spec: out };
    }
    case 'authentication.k8s.io/v1/TokenRequest': {
      // `kubectl create token`: spec { audiences(1), boundObjectRef(3) {kind, apiVersion, name, uid}, expirationSeconds(4) }
      const spec = parse((raw.get(2)?.[0] as Buffer) ?? Buffer.alloc(0));
      const out: Record<string, unknown> = { audiences: strs(spec, 1) };
      const exp = spec.get(4)?.[0];
      if (typeof exp === 'bigint') out.expirationSeconds = Number(BigInt.asIntN(64, exp));
      const ref = spec.get(3)?.[0] as Buffer | undefined;
      if (ref) {
        const f = parse(ref);
        out.boundObjectRef = drop({
          kind: str(f, 1),
          apiVersion: str(f, 2),
          name: str(f, 3),
          uid: str(f, 4),
        });
      }
      return { ...base, spec: out };
    }
    case 'authentication.k8s.io/v1/TokenReview': {
      const spec = parse((raw.get(2)?.[0] as Buffer) ?? Buffer.alloc(0));
      return { ...base, spec: { token: str(spec, 1), audiences: strs(spec, 2) } };
    }
    case 'authentication.k8s.io/v1/SelfSubjectReview':
      return base;
    case 'v1/ServiceAccount':
      return drop({ ...base, automountServiceAccountToken: bool(raw, 4) });
    default:
      throw errors.unsupportedMediaType('application/vnd.kubernetes.protobuf');
  }
}
