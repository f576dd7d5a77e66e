/**
 * The Status tab of the etcd health panel: etcdctl's status columns compacted to fit the editor,
 * each member's quota as etcd reports it, and the inventory's tuning beside it (issue #20).
 */
import {
  humanBytes,
  type ClusterSnapshot,
  type HostSettings,
  type HostSettingsMember,
  type SettingsInEffect,
} from '../../src/shared/etcdTypes';
import type { HealthPanelState } from '../../src/shared/protocol';
import { el, icon } from './dom';
import { button, cards, table, twoLines, verdict } from './tables';

/** A member's client URL with its inventory name. */
export function endpointCell(s: HealthPanelState, endpoint: string): HTMLElement {
  const span = el('span');
  const name = s.names[endpoint];
  span.append(endpoint);
  if (name) span.append(' ', el('span', name, 'muted nowrap'));
  return span;
}

/**
 * What etcd runs with beside what the inventory asks for (issue #20): the inventory's tuning in
 * one line, each member's quota (from its /metrics) in the table, and when they differ the line
 * `status` prints with Provision etcd to apply it.
 */
function settingsBlock(
  settings: SettingsInEffect,
  onProvision: () => void,
  onReadSettings?: () => void,
): HTMLElement {
  const box = el('div', undefined, 'settings');
  box.setAttribute('data-testid', 'settings-in-effect');
  const line = el('p', undefined, 'muted');
  line.append(
    el('strong', 'Inventory: '),
    `quota ${settings.inventoryQuota}`,
    ...(settings.inventoryTuning.length > 0 ? [` · ${settings.inventoryTuning.join(' · ')}`] : []),
    ...(Object.keys(settings.quotas).length === 0
      ? [' · the quota each member runs with shows after the first metrics scrape']
      : []),
  );
  box.append(line);
  if (settings.drift) {
    const drift = el('div', undefined, 'notice');
    drift.setAttribute('data-testid', 'quota-drift');
    const text = el('p');
    text.append(icon('warning'), ` ${settings.drift.replace(/: apply it with `[^`]*`$/, '.')}`);
    const row = el('div', undefined, 'actions-row');
    row.append(
      button('Provision etcd', 'play', onProvision),
      el('span', 'rewrites the env file and restarts the members to apply it', 'muted'),
    );
    drift.append(text, row);
    box.append(drift);
  }
  if (onReadSettings) {
    const row = el('div', undefined, 'actions-row');
    const read = button('Read Settings from Hosts', 'server', onReadSettings);
    if (settings.readingHosts) read.setAttribute('disabled', '');
    row.append(
      read,
      el(
        'span',
        settings.readingHosts
          ? 'Reading each member over SSH…'
          : "every tuning key each member's etcd runs with, read over SSH from its process (or its env file and unit when it is not running)",
        'muted',
      ),
    );
    box.append(row);
  }
  if (settings.fromHosts) box.append(hostSettingsBlock(settings.fromHosts));
  return box;
}

/** Where a member's values come from, in a few words. */
function sourceWords(m: HostSettingsMember): string {
  const v = m.version ? `etcd ${m.version}, ` : '';
  if (m.source === 'process') return `${v}running (pid ${m.pid ?? '?'})`;
  if (m.source === 'files') return `${v}not running: its env file and unit`;
  return `not read: ${m.error ?? 'no answer'}`;
}

/**
 * The comparison Read Settings from Hosts gives (what `status --settings` prints): each tuning key
 * with the inventory's value and each member's, a member's value that is not the inventory's
 * marked; where each member's values come from; what to run.
 */
function hostSettingsBlock(h: HostSettings): HTMLElement {
  const box = el('div');
  box.setAttribute('data-testid', 'host-settings');
  const read = h.members.filter((m) => m.source !== 'unread');
  if (h.rows.length === 0) {
    box.append(
      el(
        'p',
        read.length > 0
          ? "No tuning key is set in the inventory or on any member: etcd's defaults everywhere."
          : 'No member could be read.',
        'muted',
      ),
    );
  } else {
    const cell = (key: string, inventory: string, member: string, value: string) => {
      const differs = h.rows.find((r) => r.key === key)?.differs.includes(member);
      if (!differs) return el('span', value, 'nowrap');
      const span = el('span', undefined, 'warn nowrap');
      span.title = `The inventory asks for ${inventory}`;
      span.setAttribute('data-differs', '');
      span.append(icon('warning'), ` ${value}`);
      return span;
    };
    box.append(
      cards(
        table(
          ['Key', 'Inventory', ...read.map((m) => m.member)],
          h.rows.map((r) => [
            r.key,
            r.inventory,
            ...read.map((m) => cell(r.key, r.inventory, m.member, r.values[m.member] ?? '')),
          ]),
          'settings on the hosts',
        ),
      ),
    );
  }
  const list = el('ul', undefined, 'muted');
  for (const m of h.members) {
    const li = el('li', `${m.member}: ${sourceWords(m)}`);
    if (m.stale) li.append(' (its env file or unit now says otherwise)');
    for (const u of m.unknown) li.append(el('div', `also set, not from the inventory: ${u}`));
    if (m.refused > 0)
      li.append(el('div', `${m.refused} entries not read (malformed or too large)`));
    list.append(li);
  }
  box.append(list);
  if (h.actions.length > 0) {
    const todo = el('div', undefined, 'notice');
    todo.setAttribute('data-testid', 'host-settings-actions');
    for (const a of h.actions) {
      const p = el('p');
      p.append(icon('warning'), ` ${a}`);
      todo.append(p);
    }
    box.append(todo);
  } else {
    const ok = el('p', undefined, 'ok');
    ok.append(icon('pass-filled'), " Every member runs with the inventory's settings.");
    box.append(ok);
  }
  return box;
}

/** A member's quota as etcd reports it; marked when it is not the inventory's. */
function quotaCell(settings: SettingsInEffect | undefined, endpoint: string): string | Node {
  const q = settings?.quotas[endpoint];
  if (!q) return '–';
  if (!settings.differs.includes(endpoint)) return el('span', q, 'nowrap');
  const span = el('span', undefined, 'warn nowrap');
  span.title = `The inventory asks for ${settings.inventoryQuota}`;
  span.append(icon('warning'), ` ${q}`);
  return span;
}

export function statusTab(
  s: HealthPanelState,
  snap: ClusterSnapshot,
  onProvision: () => void,
  onReadSettings?: () => void,
): HTMLElement {
  if (s.notProvisioned) return el('p', 'Nothing answers yet: no status to show.', 'muted');
  // etcdctl's columns, compacted to fit the editor: leader and learner in one Role (as the
  // Metrics tab), raft index and applied in one cell, Errors only when there are some. Copy as
  // Markdown and Open in CLI keep etcdctl's own table.
  const errors = snap.status.some((r) => r.problem || r.errors.length > 0);
  const header = [
    'Endpoint',
    'ID',
    'Version',
    'DB size',
    'Quota',
    'Role',
    'Raft term',
    'Raft index / applied',
    ...(errors ? ['Errors'] : []),
  ];
  const t = table(
    header,
    snap.status.map((r) =>
      r.problem
        ? [endpointCell(s, r.endpoint), '', '', '', '', '', '', '', r.problem.summary]
        : [
            endpointCell(s, r.endpoint),
            r.id,
            r.version,
            twoLines(
              humanBytes(r.dbSize),
              r.dbSizeInUse ? `${humanBytes(r.dbSizeInUse)} in use` : undefined,
            ),
            quotaCell(s.settings, r.endpoint),
            r.isLearner ? 'learner' : r.isLeader ? verdict(true, 'leader') : 'follower',
            r.raftTerm,
            `${r.raftIndex} / ${r.raftAppliedIndex}`,
            ...(errors ? [r.errors.join(', ')] : []),
          ],
    ),
    'endpoint status',
  );
  const root = el('div', undefined, 'status');
  if (s.settings) root.append(settingsBlock(s.settings, onProvision, onReadSettings));
  root.append(cards(t));
  return root;
}
