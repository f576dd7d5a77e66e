/** The keyspace report as text (the CLI), every string from etcd made printable. */
import { humanBytes } from '../../shared/etcdTypes';
import { renderColumns } from '../format/table';
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

export function keyspaceText(r: KeyspaceReport, opts: { top?: number } = {}): string {
  const top = opts.top ?? 20;
  const out: string[] = [];
  out.push(
    `${r.keys} keys${r.prefix ? ` under ${p(r.prefix)}` : ''}, ${humanBytes(r.bytes)} of keys and values at revision ${r.revision}` +
      ` (read in ${r.pages} pages, ${(r.elapsedMs / 1000).toFixed(1)} s)`,
  );
  const c = r.compaction;
  if (c) {
    out.push(
      c.compactRevision <= 1
        ? 'Compaction: never compacted; every revision is kept.'
        : `Compaction: revisions before ${c.compactRevision} are compacted; ${c.revisionsSince} revisions since` +
            (c.kubernetes
              ? ` (kube-apiserver compacted ${c.kubernetes.compactions} times, last at revision ${c.kubernetes.lastRevision}).`
              : '.'),
    );
  }
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
  out.push(
    `Leases: ${l.total ?? '?'} in etcd; ${l.keysWithLease} scanned keys are attached to ${l.list.length}${l.list.length === 100 ? '+' : ''} of them.`,
  );
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
