/**
 * The Keyspace tab of the etcd health panel: what fills the database, scanned when the tab
 * opens (or on Scan again), never on a timer. Keys and bytes by resource and namespace, the
 * largest keys (each opens its decoded value), leases, compaction and Secrets at rest. Every
 * string came from etcd: the host made it printable, and it is only ever set as text.
 */
import { humanBytes } from '../../src/shared/etcdTypes';
import { localStamp } from '../../src/shared/stamp';
import {
  KeyspaceCancelCommand,
  KeyspaceScanCommand,
  KeyspaceShowKeyCommand,
  type KeyspaceTabState,
  type KeyspaceWebviewToHost,
} from '../../src/shared/protocol';
import { el } from './dom';
import { button, cards, table } from './tables';

const share = (n: number, total: number) =>
  total > 0 ? `${((100 * n) / total).toFixed(1)}%` : '-';

export function keyspaceTab(
  s: KeyspaceTabState | undefined,
  post: (m: KeyspaceWebviewToHost) => void,
): HTMLElement {
  const root = el('div', undefined, 'keyspace');
  const bar = el('div', undefined, 'actions');
  if (s?.running) {
    const ring = el('vscode-progress-ring');
    ring.setAttribute('aria-label', 'scanning');
    bar.append(
      ring,
      el(
        'span',
        `Reading the keyspace: ${s.running.keys} keys, ${humanBytes(s.running.bytes)} so far…`,
      ),
      button('Cancel', 'close', () => post(KeyspaceCancelCommand.create({}))),
    );
  } else {
    bar.append(
      button(
        s?.report ? 'Scan again' : 'Scan',
        'refresh',
        () => post(KeyspaceScanCommand.create({})),
        false,
      ),
    );
  }
  root.append(bar);
  if (s?.error) root.append(el('p', s.error, 'error'));
  const r = s?.report;
  if (!r) {
    if (!s?.running && !s?.error)
      root.append(
        el('p', 'Reads every key once, page by page, to show what fills the database.', 'muted'),
      );
    return root;
  }
  const summary = el('p', r.headline);
  summary.setAttribute('data-testid', 'keyspace-summary');
  root.append(
    summary,
    el('p', r.compaction),
    el('p', r.secrets, r.secretsPlain ? 'warn' : undefined),
  );
  if (s.at) root.append(el('p', `Scanned ${localStamp(s.at)}`, 'muted'));

  root.append(el('h2', 'By resource'));
  root.append(
    cards(
      table(
        ['Resource', 'Kind', 'Keys', 'Bytes', 'Share', 'Largest'],
        r.resources.map((x) => [
          x.resource,
          x.kind,
          String(x.keys),
          humanBytes(x.bytes),
          share(x.bytes, r.bytes),
          humanBytes(x.largest),
        ]),
        'keys and bytes by resource',
      ),
    ),
  );
  if (r.namespaces.length) {
    root.append(el('h2', 'By namespace'));
    root.append(
      table(
        ['Namespace', 'Keys', 'Bytes', 'Share'],
        r.namespaces.map((n) => [
          n.namespace,
          String(n.keys),
          humanBytes(n.bytes),
          share(n.bytes, r.bytes),
        ]),
        'keys and bytes by namespace',
      ),
    );
  }
  if (r.top.length) {
    root.append(el('h2', 'Largest keys'));
    root.append(
      cards(
        table(
          ['Bytes', 'Key', 'Object', ''],
          r.top.map((t) => [
            humanBytes(t.bytes),
            t.key,
            t.object,
            button('Show', 'go-to-file', () =>
              post(KeyspaceShowKeyCommand.create({ key: t.rawKey })),
            ),
          ]),
          'largest keys',
        ),
      ),
    );
  }
  root.append(el('h2', 'Leases'), el('p', r.leasesLine));
  if (r.leases.length)
    root.append(
      table(
        ['Lease', 'Keys', 'Bytes', 'TTL', 'Resources'],
        r.leases.map((l) => [l.id, String(l.keys), humanBytes(l.bytes), l.ttl, l.resources]),
        'leases by keys',
      ),
    );
  return root;
}
