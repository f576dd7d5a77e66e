/**
 * One key's value as a read-only document: where it sits, how it is stored, and what can be
 * decoded of it. Secrets show their metadata only (never data, even stored in plain text);
 * an encrypted value shows its provider and key name; text outside Kubernetes' envelopes is not
 * shown (K3s's /bootstrap holds its certificates). Every string from etcd is made printable.
 */
import type { Etcd3 } from 'etcd3';
import { humanBytes } from '../../shared/etcdTypes';
import { oneLine } from '../plan/steps';
import {
  classify,
  decodeJson,
  decodeProtobuf,
  encryptionOf,
  placeOfKey,
  REGISTRY,
  type ObjectHeader,
  type ValueEncoding,
} from './envelope';

/** `text` safe for a terminal line or a document: control and bidi characters escaped. */
export function printable(text: string): string {
  return oneLine(text).replace(
    /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export interface KeyValueView {
  key: string;
  found: boolean;
  resource: string;
  namespace?: string;
  name: string;
  valueBytes: number;
  encoding?: ValueEncoding;
  /** Metadata decoded from the envelope or JSON (never a Secret's data). */
  object?: ObjectHeader;
  encryption?: { provider: string; version?: string; key?: string };
  /** Pretty JSON of a JSON value that is not a Secret (at most 256 KiB shown). */
  json?: string;
  secret: boolean;
  createRevision?: string;
  modRevision?: string;
  version?: string;
  lease?: string;
}

const MAX_JSON = 256 * 1024;

/** What `value` (at `key`) decodes to; pure. */
export function viewOf(
  key: string,
  kv:
    | {
        value: Buffer;
        create_revision?: string;
        mod_revision?: string;
        version?: string;
        lease?: string;
      }
    | undefined,
): KeyValueView {
  const place = placeOfKey(key);
  const base = {
    key,
    resource: place.resource,
    ...(place.namespace !== undefined ? { namespace: place.namespace } : {}),
    name: place.name,
  };
  if (!kv) return { ...base, found: false, valueBytes: 0, secret: false };
  const encoding = classify(kv.value);
  const object =
    encoding === 'protobuf'
      ? decodeProtobuf(kv.value, true)
      : encoding === 'json'
        ? decodeJson(kv.value).header
        : undefined;
  const secret = place.resource === 'secrets' || object?.kind === 'Secret';
  const view: KeyValueView = {
    ...base,
    found: true,
    valueBytes: kv.value.length,
    encoding,
    secret,
    ...(object ? { object } : {}),
    ...(encoding === 'encrypted' ? { encryption: encryptionOf(kv.value) } : {}),
    ...(kv.create_revision ? { createRevision: kv.create_revision } : {}),
    ...(kv.mod_revision ? { modRevision: kv.mod_revision } : {}),
    ...(kv.version ? { version: kv.version } : {}),
    ...(kv.lease && kv.lease !== '0' ? { lease: BigInt(kv.lease).toString(16) } : {}),
  };
  if (encoding === 'json' && !secret && kv.value.length <= MAX_JSON) {
    const { parsed } = decodeJson(kv.value);
    if (parsed !== undefined) view.json = JSON.stringify(parsed, null, 2);
  }
  return view;
}

/** Reads one key (a single small range) and decodes it. */
export async function showKey(client: Etcd3, key: string): Promise<KeyValueView> {
  const r = await client.kv.range({ key: Buffer.from(key) });
  return viewOf(key, r.kvs[0]);
}

const STORED: Record<ValueEncoding, string> = {
  protobuf: 'Kubernetes protobuf (k8s\\0 + runtime.Unknown)',
  json: 'JSON',
  encrypted: 'encrypted at rest (k8s:enc:)',
  text: 'text',
  binary: 'binary',
  empty: 'empty value',
};

/** The document the editor opens and `keyspace --key` prints. */
export function renderKeyView(v: KeyValueView): string {
  const p = printable;
  const lines = [`Key: ${p(v.key)}`];
  if (!v.found) return [...lines, 'No such key (at the current revision).'].join('\n');
  lines.push(
    `Resource: ${p(v.resource)}${v.namespace !== undefined ? `   Namespace: ${p(v.namespace)}` : ''}${v.name ? `   Name: ${p(v.name)}` : ''}`,
    `Value: ${humanBytes(v.valueBytes)} (${v.valueBytes} bytes), stored as ${STORED[v.encoding!]}`,
    `Revisions: created ${v.createRevision ?? '-'}, modified ${v.modRevision ?? '-'}, version ${v.version ?? '-'}${v.lease ? `, lease ${v.lease}` : ''}`,
  );
  if (v.encryption) {
    const e = v.encryption;
    lines.push(
      `Encrypted by the ${p(e.provider)} provider${e.key ? `, key "${p(e.key)}"` : ''}${e.version ? ` (${p(e.version)})` : ''}: it cannot be read without the API server's encryption key, and is not shown.`,
    );
  }
  const o = v.object;
  if (o) {
    lines.push('');
    const row = (label: string, val: string | undefined) => {
      if (val !== undefined) lines.push(`${label.padEnd(18)}${p(val)}`);
    };
    row('apiVersion:', o.apiVersion);
    row('kind:', o.kind);
    row('namespace:', o.namespace);
    row('name:', o.name);
    row('generateName:', o.generateName);
    row('uid:', o.uid);
    row('resourceVersion:', o.resourceVersion);
    row('created:', o.creationTimestamp);
    row('contentType:', o.contentType);
    row('contentEncoding:', o.contentEncoding);
    if (o.labels?.length) {
      lines.push('labels:');
      for (const [k, val] of o.labels) lines.push(`  ${p(k)}: ${p(val)}`);
    }
    if (o.annotations?.length) {
      lines.push('annotations (value sizes):');
      for (const [k, n] of o.annotations) lines.push(`  ${p(k)}: ${humanBytes(n)}`);
    }
    if (o.managedFields)
      lines.push(
        `managedFields:    ${o.managedFields.entries} entries, ${humanBytes(o.managedFields.bytes)}`,
      );
    if (o.objectFields?.length) {
      const names: Record<number, string> = {
        1: 'metadata',
        2: v.secret ? 'data' : 'spec',
        3: 'status',
      };
      lines.push(
        `fields:           ${o.objectFields.map((f) => `${f.no}${names[f.no] ? ` (${names[f.no]})` : ''} ${humanBytes(f.bytes)}`).join(', ')}`,
      );
    }
    if (o.problem) lines.push(`(${p(o.problem)}; the fields above were read before it)`);
  }
  if (v.secret) lines.push('', 'A Secret: its metadata only; its data is never shown.');
  else if (v.json !== undefined) lines.push('', ...v.json.split('\n').map(p));
  else if (v.encoding === 'text' || v.encoding === 'binary')
    lines.push(
      '',
      v.key.startsWith(REGISTRY)
        ? 'Not a Kubernetes envelope: not shown.'
        : 'Outside /registry/ (K3s keeps its bootstrap data there): not shown.',
    );
  return lines.join('\n');
}
