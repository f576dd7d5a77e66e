/** The keyspace report as text (the CLI), every string from etcd made printable. */
import { humanBytes } from '../../shared/etcdTypes';
import { renderColumns } from '../format/table';
import type { KeyspaceTabReport } from '../../shared/keyspaceTypes';
import type { KeyspaceReport } from './scan';
import type { SecretsAtRest, TopKey } from './tally';
import { printable as p } from './view';

const share = (n: number, total: number) =>
  total > 0 ? `${((100 * n) / total).toFixed(1)}%` : '-';

/** "500 Secrets: all encrypted at rest (aescbc:key1)" and its variants. */
export function secretsLine(s: SecretsAtRest): string {
  if (s.total === 0) return 'Secrets: none in the scanned keys.';
  const by = s.providers.length ? ` (${s.providers.map(p).join(', ')})` : '';
  if (s.plain === 0) return `Secrets: ${s.total}, all encrypted at rest${by}.`;
  if (s.encrypted === 0)
    return `Secrets: ${s.total}, stored in plain text (no k8s:enc: prefix): anyone who reads etcd or a snapshot reads them. Turn on encryption at rest (K3s: --secrets-encryption).`;
  return `Secrets: ${s.total}, ${s.encrypted} encrypted at rest${by}, ${s.plain} in plain text (written before encryption was turned on? K3s: k3s secrets-encrypt reencrypt).`;
}

/** "Pod v1 default/web-1, created 2024-..." */
export function objectLine(t: TopKey): string {
  const o = t.object;
  const what = o.kind ? `${p(o.kind)} ${p(o.apiVersion ?? '')}`.trim() : t.encoding;
  const where = o.name ? `${o.namespace ? `${p(o.namespace)}/` : ''}${p(o.name)}` : '';
  const enc = t.encryption ? `encrypted (${p(t.encryption.provider)})` : '';
  return [what, where, o.creationTimestamp ? `created ${p(o.creationTimestamp)}` : '', enc]
    .filter(Boolean)
    .join(', ');
}

/** The revision and compaction state in words. */
export function compactionLine(r: KeyspaceReport): string {
  const c = r.compaction;
  if (!c) return `Revision ${r.revision}.`;
  if (c.compactRevision <= 1) return 'Compaction: never compacted; every revision is kept.';
  return (
    `Compaction: revisions before ${c.compactRevision} are compacted; ${c.revisionsSince} revisions since` +
    (c.kubernetes
      ? ` (kube-apiserver compacted ${c.kubernetes.compactions} times, last at revision ${c.kubernetes.lastRevision}).`
      : '.')
  );
}

export function leasesLine(r: KeyspaceReport): string {
  const l = r.leases;
  return `Leases: ${l.total ?? '?'} in etcd; ${l.keysWithLease} scanned keys are attached to ${l.list.length}${l.list.length === 100 ? '+' : ''} of them.`;
}

const headline = (r: KeyspaceReport) =>
  `${r.keys} keys${r.prefix ? ` under ${p(r.prefix)}` : ''}, ${humanBytes(r.bytes)} of keys and values at revision ${r.revision}` +
  ` (read in ${r.pages} pages, ${(r.elapsedMs / 1000).toFixed(1)} s)`;

/** The Keyspace tab's view of a report: display-ready, every string printable. */
export function keyspaceTabReport(r: KeyspaceReport): KeyspaceTabReport {
  return {
    headline: headline(r),
    compaction: compactionLine(r),
    secrets: secretsLine(r.secrets),
    secretsPlain: r.secrets.plain > 0,
    leasesLine: leasesLine(r),
    bytes: r.bytes,
    resources: r.resources.slice(0, 100).map((x) => ({
      resource: p(x.resource),
      kind: x.kind ? p(x.kind) : '-',
      keys: x.keys,
      bytes: x.bytes,
      largest: x.largest,
    })),
    namespaces: r.namespaces
      .slice(0, 30)
      .map((n) => ({ namespace: p(n.namespace), keys: n.keys, bytes: n.bytes })),
    top: r.top.map((t) => ({
      key: p(t.key),
      rawKey: t.key,
      bytes: t.bytes,
      object: objectLine(t),
    })),
    leases: r.leases.list.slice(0, 20).map((l) => ({
      id: l.id,
      keys: l.keys,
      bytes: l.bytes,
      ttl: l.ttl !== undefined ? `${l.ttl}/${l.grantedTtl} s` : '-',
      resources: l.resources.map(p).join(', '),
    })),
  };
}

export function keyspaceText(r: KeyspaceReport, opts: { top?: number } = {}): string {
  const top = opts.top ?? 20;
  const out: string[] = [];
  out.push(headline(r));
  if (r.compaction) out.push(compactionLine(r));
  out.push('', 'By resource:');
  out.push(
    renderColumns(
      ['RESOURCE', 'KIND', 'KEYS', 'BYTES', 'SHARE', 'LARGEST'],
      r.resources
        .slice(0, 40)
        .map((x) => [
          p(x.resource),
          x.kind ? p(x.kind) : '-',
          String(x.keys),
          humanBytes(x.bytes),
          share(x.bytes, r.bytes),
          humanBytes(x.largest),
        ]),
    ),
  );
  if (r.resources.length > 40)
    out.push(`(and ${r.resources.length - 40} more resources; --json has them all)`);
  if (r.namespaces.length) {
    out.push('', 'By namespace:');
    out.push(
      renderColumns(
        ['NAMESPACE', 'KEYS', 'BYTES', 'SHARE'],
        r.namespaces
          .slice(0, 15)
          .map((n) => [
            p(n.namespace),
            String(n.keys),
            humanBytes(n.bytes),
            share(n.bytes, r.bytes),
          ]),
      ),
    );
    if (r.namespaces.length > 15) out.push(`(and ${r.namespaces.length - 15} more namespaces)`);
  }
  if (r.top.length) {
    out.push('', `Largest keys (top ${Math.min(top, r.top.length)}):`);
    out.push(
      renderColumns(
        ['BYTES', 'KEY', 'OBJECT'],
        r.top.slice(0, top).map((t) => [humanBytes(t.bytes), p(t.key), objectLine(t)]),
      ),
    );
  }
  out.push('');
  const l = r.leases;
  out.push(leasesLine(r));
  if (l.list.length) {
    out.push(
      renderColumns(
        ['LEASE', 'KEYS', 'BYTES', 'TTL', 'RESOURCES'],
        l.list
          .slice(0, 10)
          .map((x) => [
            x.id,
            String(x.keys),
            humanBytes(x.bytes),
            x.ttl !== undefined ? `${x.ttl}/${x.grantedTtl} s` : '-',
            x.resources.map(p).join(', '),
          ]),
      ),
    );
  }
  out.push('', secretsLine(r.secrets));
  if (r.folded) out.push('(very many distinct names: the rest are counted as "(other)")');
  return out.join('\n');
}
