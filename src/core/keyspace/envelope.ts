/**
 * What a key and its value say about the Kubernetes object stored there, from the published
 * formats only (no Kubernetes client):
 *  - the key: `/registry/<resource>/[<namespace>/]<name>`, `/registry/<group>/<resource>/...`
 *    for API groups (CRDs, custom resources), `/registry/services/{specs,endpoints}/...`;
 *  - the value: `k8s\0` + runtime.Unknown (k8s.io/apimachinery pkg/runtime/generated.proto:
 *    typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3, contentType = 4),
 *    whose raw object has ObjectMeta as field 1 (pkg/apis/meta/v1/generated.proto: name = 1,
 *    generateName = 2, namespace = 3, uid = 5, resourceVersion = 6, creationTimestamp = 8 as
 *    Time {seconds = 1, nanos = 2}, labels = 11, annotations = 12, managedFields = 17); JSON
 *    (custom resources); `k8s:enc:<provider>:<version>:<key>:` when encrypted at rest.
 * Nothing here trusts the bytes: lengths are bounded by the wire reader, strings are capped.
 */
import { collect, fields, text, type Field } from '../etcd/wire';

export type ValueEncoding = 'protobuf' | 'json' | 'encrypted' | 'text' | 'binary' | 'empty';

export interface KeyPlace {
  /** `pods`, `customresourcedefinitions.apiextensions.k8s.io`, `services/specs`; outside /registry/ its first segment (`/bootstrap`). */
  resource: string;
  /** Set for a namespaced path (`/registry/<resource>/<namespace>/<name>`). */
  namespace?: string;
  name: string;
}

const MAX_LABEL = 256;
const cap = (s: string, n = MAX_LABEL) => (s.length > n ? `${s.slice(0, n)}…` : s);

export const REGISTRY = '/registry/';

/** Where a key sits in Kubernetes' layout (by the path alone: cheap, and what etcdctl sees too). */
export function placeOfKey(key: string): KeyPlace {
  if (!key.startsWith(REGISTRY)) {
    const seg = key.startsWith('/') ? `/${key.slice(1).split('/')[0] ?? ''}` : key.split('/')[0]!;
    return { resource: cap(seg, 64), name: cap(key) };
  }
  const segs = key.slice(REGISTRY.length).split('/');
  let resource = segs[0] ?? '';
  let rest = segs.slice(1);
  if (resource.includes('.') && segs.length >= 2) {
    resource = `${segs[1]}.${resource}`; // kubectl's resource.group
    rest = segs.slice(2);
  } else if (resource === 'services' && (segs[1] === 'specs' || segs[1] === 'endpoints')) {
    resource = `services/${segs[1]}`;
    rest = segs.slice(2);
  }
  resource = cap(resource, 128);
  if (rest.length >= 2)
    return { resource, namespace: cap(rest[0]!), name: cap(rest.slice(1).join('/')) };
  return { resource, name: cap(rest[0] ?? '') };
}

const K8S_MAGIC = Buffer.from('k8s\0');
const ENC_PREFIX = Buffer.from('k8s:enc:');

const startsWith = (v: Uint8Array, p: Buffer) =>
  v.length >= p.length && Buffer.from(v.buffer, v.byteOffset, p.length).equals(p);

/** How a value is stored, from its first bytes only. */
export function classify(v: Uint8Array): ValueEncoding {
  if (v.length === 0) return 'empty';
  if (startsWith(v, ENC_PREFIX)) return 'encrypted';
  if (startsWith(v, K8S_MAGIC)) return 'protobuf';
  let i = 0;
  while (
    i < v.length &&
    i < 64 &&
    (v[i] === 0x20 || v[i] === 0x0a || v[i] === 0x0d || v[i] === 0x09)
  )
    i++;
  if (v[i] === 0x7b || v[i] === 0x5b) return 'json';
  for (let j = 0; j < Math.min(v.length, 256); j++) {
    const b = v[j]!;
    if (b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return 'binary';
  }
  return 'text';
}

export interface Encryption {
  /** `aescbc`, `aesgcm`, `secretbox`, `kms`. */
  provider: string;
  version?: string;
  /** The key's name in the EncryptionConfiguration. */
  key?: string;
}

/** `k8s:enc:aescbc:v1:key1:<ciphertext>` → { provider, version, key } (printable tokens only). */
export function encryptionOf(v: Uint8Array): Encryption {
  const head = Buffer.from(v.buffer, v.byteOffset, Math.min(v.length, ENC_PREFIX.length + 200))
    .subarray(ENC_PREFIX.length)
    .toString('latin1');
  const tokens = head.split(':').slice(0, 3);
  const ok = (t: string | undefined) => t !== undefined && /^[A-Za-z0-9._-]{1,64}$/.test(t);
  const [provider, version, key] = tokens;
  if (!ok(provider)) return { provider: 'unknown' };
  return {
    provider: provider!,
    ...(ok(version) ? { version: version! } : {}),
    ...(ok(version) && ok(key) ? { key: key! } : {}),
  };
}

export interface ObjectHeader {
  apiVersion?: string;
  kind?: string;
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  /** ISO 8601. */
  creationTimestamp?: string;
  contentType?: string;
  contentEncoding?: string;
  labels?: Array<[string, string]>;
  /** Annotation names and the size of each value (values can be large: last-applied-configuration). */
  annotations?: Array<[string, number]>;
  managedFields?: { entries: number; bytes: number };
  /** The raw object's top-level fields: number and size (1 is metadata, usually 2 spec, 3 status). */
  objectFields?: Array<{ no: number; bytes: number }>;
  /** Set when the bytes ended malformed; what was read before stays. */
  problem?: string;
}

function timeOf(f: Field | undefined): string | undefined {
  if (!f?.bytes) return undefined;
  const { byNo } = collect(f.bytes);
  const seconds = byNo.get(1)?.num ?? 0;
  const nanos = byNo.get(2)?.num ?? 0;
  const ms = seconds * 1000 + Math.floor(nanos / 1e6);
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return undefined;
  return new Date(ms).toISOString();
}

const str = (f: Field | undefined) => (f?.bytes ? cap(text(f.bytes)) : undefined);

function mapEntry(bytes: Uint8Array | undefined): [string, Field | undefined] {
  const { byNo } = collect(bytes ?? new Uint8Array());
  return [cap(text(byNo.get(1)?.bytes)), byNo.get(2)];
}

const MAX_ENTRIES = 200;

/**
 * The header of a `k8s\0` value: runtime.Unknown's type and the raw object's ObjectMeta.
 * `full` adds labels, annotation sizes, managedFields and the object's field sizes (the value
 * view); the scan needs only the names.
 */
export function decodeProtobuf(v: Uint8Array, full = false): ObjectHeader {
  const out: ObjectHeader = {};
  const unknown = collect(v.subarray(K8S_MAGIC.length));
  const problems = [v.length <= K8S_MAGIC.length ? 'nothing after the magic' : unknown.error];
  const typeMeta = collect(unknown.byNo.get(1)?.bytes ?? new Uint8Array());
  problems.push(typeMeta.error);
  const set = <K extends keyof ObjectHeader>(k: K, val: ObjectHeader[K] | undefined) => {
    if (val !== undefined) out[k] = val;
  };
  set('apiVersion', str(typeMeta.byNo.get(1)));
  set('kind', str(typeMeta.byNo.get(2)));
  set('contentEncoding', str(unknown.byNo.get(3)));
  set('contentType', str(unknown.byNo.get(4)));
  const raw = unknown.byNo.get(2)?.bytes;
  if (raw && !out.contentEncoding && (!out.contentType || /protobuf/.test(out.contentType))) {
    const obj = collect(raw);
    problems.push(obj.error);
    if (full)
      out.objectFields = [...obj.byNo.values()]
        .map((f) => ({ no: f.no, bytes: f.size }))
        .sort((a, b) => a.no - b.no);
    const metaBytes = obj.byNo.get(1)?.bytes;
    if (metaBytes) {
      const labels: Array<[string, string]> = [];
      const annotations: Array<[string, number]> = [];
      let managed = { entries: 0, bytes: 0 };
      const meta = new Map<number, Field>();
      try {
        for (const f of fields(metaBytes)) {
          if (!full || f.no < 11) meta.set(f.no, f);
          else if (f.no === 11 && labels.length < MAX_ENTRIES) {
            const [k, val] = mapEntry(f.bytes);
            labels.push([k, cap(text(val?.bytes))]);
          } else if (f.no === 12 && annotations.length < MAX_ENTRIES) {
            const [k, val] = mapEntry(f.bytes);
            annotations.push([k, val?.size ?? 0]);
          } else if (f.no === 17)
            managed = { entries: managed.entries + 1, bytes: managed.bytes + f.size };
        }
      } catch (err) {
        problems.push((err as Error).message);
      }
      set('name', str(meta.get(1)));
      set('generateName', str(meta.get(2)));
      set('namespace', str(meta.get(3)));
      set('uid', str(meta.get(5)));
      set('resourceVersion', str(meta.get(6)));
      set('creationTimestamp', timeOf(meta.get(8)));
      if (full) {
        if (labels.length) out.labels = labels;
        if (annotations.length) out.annotations = annotations;
        if (managed.entries) out.managedFields = managed;
      }
    }
  }
  const problem = problems.filter(Boolean).join('; ');
  if (problem) out.problem = `malformed protobuf: ${problem}`;
  return out;
}

/** The same header from a JSON value (custom resources), or a problem when it is not JSON. */
export function decodeJson(v: Uint8Array): { header: ObjectHeader; parsed?: unknown } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(v.buffer, v.byteOffset, v.length).toString('utf8'));
  } catch (err) {
    return { header: { problem: `not valid JSON: ${(err as Error).message}` } };
  }
  const header: ObjectHeader = {};
  const o = (x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? (x as Record<string, unknown>) : {};
  const s = (x: unknown) => (typeof x === 'string' ? cap(x) : undefined);
  const top = o(parsed);
  const meta = o(top['metadata']);
  const pairs: Array<[keyof ObjectHeader, string | undefined]> = [
    ['apiVersion', s(top['apiVersion'])],
    ['kind', s(top['kind'])],
    ['name', s(meta['name'])],
    ['generateName', s(meta['generateName'])],
    ['namespace', s(meta['namespace'])],
    ['uid', s(meta['uid'])],
    ['creationTimestamp', s(meta['creationTimestamp'])],
  ];
  for (const [k, val] of pairs) if (val !== undefined) (header as Record<string, string>)[k] = val;
  return { header, parsed };
}

/** The object header of any value, by its encoding (empty for encrypted, text and binary). */
export function headerOf(v: Uint8Array, encoding = classify(v), full = false): ObjectHeader {
  if (encoding === 'protobuf') return decodeProtobuf(v, full);
  if (encoding === 'json') return decodeJson(v).header;
  return {};
}
