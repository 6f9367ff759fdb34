// ObjectMeta validation with the real API server's messages: names, label keys/values, annotations.
import type { StatusCause } from './errors.js';

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_DNS = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_DNS_MSG =
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const NAME_PART_MSG =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

const invalid = (field: string, value: string, msg: string): StatusCause => ({
  reason: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${JSON.stringify(value)}: ${msg}`,
});

/** Qualified names (label and annotation keys): `[prefix/]name`. */
function qualifiedName(field: string, key: string): StatusCause[] {
  const parts = key.split('/');
  const out: StatusCause[] = [];
  if (parts.length > 2) return [invalid(field, key, NAME_PART_MSG)];
  const [prefix, name] = parts.length === 2 ? parts : [undefined, parts[0]!];
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !SUBDOMAIN.test(prefix)))
    out.push(invalid(field, key, `prefix part ${SUBDOMAIN_MSG}`));
  if (!name || name.length > 63 || !NAME_PART.test(name))
    out.push(
      invalid(
        field,
        key,
        name && name.length > 63 ? 'name part must be no more than 63 characters' : NAME_PART_MSG,
      ),
    );
  return out;
}

/**
 * `dns1123Label` kinds (namespaces, services) have stricter names than the rest (subdomains); RBAC
 * kinds only need a valid path segment (kube-apiserver's ValidateRBACName): `system:auth-delegator`.
 */
export function validateMeta(
  md: Record<string, any>,
  nameIsLabel: boolean,
  nameIsPathSegment = false,
): StatusCause[] {
  const out: StatusCause[] = [];
  const name = String(md.name ?? '');
  if (nameIsPathSegment) {
    if (name === '.' || name === '..') out.push(invalid('metadata.name', name, `may not be '${name}'`));
    for (const bad of ['/', '%'])
      if (name.includes(bad)) out.push(invalid('metadata.name', name, `may not contain '${bad}'`));
  } else if (nameIsLabel) {
    if (name.length > 63 || !LABEL_DNS.test(name)) out.push(invalid('metadata.name', name, LABEL_DNS_MSG));
  } else if (name.length > 253 || !SUBDOMAIN.test(name))
    out.push(invalid('metadata.name', name, SUBDOMAIN_MSG));
  for (const [k, v] of Object.entries((md.labels ?? {}) as Record<string, string>)) {
    out.push(...qualifiedName('metadata.labels', k));
    if (v.length > 63) out.push(invalid('metadata.labels', v, 'must be no more than 63 characters'));
    else if (!LABEL_VALUE.test(v)) out.push(invalid('metadata.labels', v, LABEL_VALUE_MSG));
  }
  let size = 0;
  for (const [k, v] of Object.entries((md.annotations ?? {}) as Record<string, string>)) {
    out.push(...qualifiedName('metadata.annotations', k));
    size += k.length + v.length;
  }
  if (size > 256 * 1024)
    out.push({
      reason: 'FieldValueTooLong',
      field: 'metadata.annotations',
      message: 'Too long: must have at most 262144 bytes',
    });
  return out;
}
