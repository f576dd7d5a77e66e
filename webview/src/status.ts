/**
 * The Status tab of the etcd health panel: etcdctl's status columns compacted to fit the editor,
 * each member's quota as etcd reports it, and the inventory's tuning beside it (issue #20).
 */
import {
  humanBytes,
  type ClusterSnapshot,
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
function settingsBlock(settings: SettingsInEffect, onProvision: () => void): HTMLElement {
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
  if (s.settings) root.append(settingsBlock(s.settings, onProvision));
  root.append(cards(t));
  return root;
}
