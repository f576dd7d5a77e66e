/** The way back's words: the dry run (what would be written) and, after a run, the result. */
import type { EtcdSource } from './etcdSource';
import type { ToSqliteResult } from './toSqlite';

const table = (rows: [string, string | number][]) =>
  ['| | |', '|---|---|', ...rows.map(([a, b]) => `| ${a} | ${b} |`)].join('\n');

/** The Markdown report of etcd → SQLite for `cluster`. */
export function toSqliteReport(
  cluster: string,
  target: string,
  s: EtcdSource,
  r?: ToSqliteResult,
): string {
  const out = [
    `# etcd → SQLite migration: cluster ${cluster}${r ? '' : ' (dry run: nothing written)'}`,
    '',
    table([
      ['target (a new kine database)', target],
      ['etcd revision read', s.revision || '-'],
      ['keys to write (/registry/, /bootstrap/)', s.keys.length],
      ['bytes to write (keys and values)', s.totalBytes],
      ['largest value', s.largest ? `${s.largest.key} (${s.largest.bytes} bytes)` : '-'],
      [
        'leased keys by TTL (kine keeps the TTL)',
        Object.entries(s.leases)
          .map(([t, n]) => `${t} s: ${n}`)
          .join(', ') || 'none',
      ],
      ['leases that ended while read (keys gone, not carried)', s.expired],
      [
        'not carried (outside K3s prefixes, or kine makes its own)',
        Object.entries(s.skipped)
          .map(([p, n]) => `${p} ${n}`)
          .join(', ') || 'none',
      ],
      ['token', s.token.note],
      ['SHA-256 of (key, value, TTL)', s.sha256],
    ]),
    '',
  ];
  if (r) {
    const v = r.verify;
    out.push(
      '## Result',
      '',
      table([
        ['file', r.file],
        ['rows written', r.write.written],
        ['file size', `${r.fileBytes} bytes`],
        ['keys found / expected (kine live selection)', `${v.foundKeys} / ${v.expectedKeys}`],
        ['leased keys found / expected', `${v.leasedFound} / ${v.leasedExpected}`],
        ["rows in etcd's modification order", v.ordered ? 'yes' : 'NO'],
        ['SHA-256 of the file', v.targetSha256],
        [
          'verified',
          v.ok
            ? 'yes: same keys, same bytes, same TTLs'
            : `NO: the file is kept as ${r.file} to inspect; ${r.target} was not written`,
        ],
        ['time', `${Math.round(r.ms)} ms`],
      ]),
      '',
    );
  }
  out.push(
    '## Before K3s uses it',
    '',
    `Writes made to etcd after revision ${s.revision || '(the read)'} are not in the file: stop the K3s servers before the migration. Kine numbers its own revisions from 1 again: Kubernetes clients relist once. Put the file in place as the server's \`server/db/state.db\` (with the server stopped, no \`state.db-wal\` beside it), remove \`datastore-endpoint\` and its TLS settings from K3s's configuration, and start K3s with the same token.`,
    '',
  );
  return out.join('\n');
}
