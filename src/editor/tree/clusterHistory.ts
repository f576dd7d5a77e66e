/**
 * What this workspace has seen of each cluster, kept in its workspace state: a member answering,
 * a provisioning task ending well. The tree reads it to tell "not provisioned yet" (neutral) from
 * "down" (red) without asking any host over SSH (SSH may prompt, so it never runs on a timer).
 * Keyed by the cluster's name and client URLs (core/tree/provisioned.ts), so a cluster moved to
 * other hosts starts afresh.
 */
import type * as vscode from 'vscode';
import type { Cluster } from '../../core/inventory/types';
import { historyKey, type ClusterHistory } from '../../core/tree/provisioned';

const STATE_KEY = 'k3sEtcd.clusterHistory';
/** Old keys are dropped beyond this many (clusters renamed or moved over time). */
const MAX_ENTRIES = 100;

interface Entry {
  /** ISO times of the first answer seen and the last provisioning run that ended well. */
  answeredAt?: string;
  provisionedAt?: string;
}

export class ClusterHistoryStore {
  constructor(private readonly memento: vscode.Memento) {}

  /** The stored map, with anything not of the expected shape left out. */
  private entries(): Record<string, Entry> {
    const raw: unknown = this.memento.get(STATE_KEY);
    const out: Record<string, Entry> = {};
    if (!raw || typeof raw !== 'object') return out;
    for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
      if (!value || typeof value !== 'object') continue;
      const v = value as Record<string, unknown>;
      const e: Entry = {};
      if (typeof v['answeredAt'] === 'string') e.answeredAt = v['answeredAt'];
      if (typeof v['provisionedAt'] === 'string') e.provisionedAt = v['provisionedAt'];
      out[key] = e;
    }
    return out;
  }

  of(cluster: Cluster): ClusterHistory {
    const e = this.entries()[historyKey(cluster)];
    return {
      ...(e?.answeredAt ? { answered: true } : {}),
      ...(e?.provisionedAt ? { provisioned: true } : {}),
    };
  }

  /** Records what was seen; resolves to whether anything changed. */
  async note(
    cluster: Cluster,
    what: 'answered' | 'provisioned',
    at = new Date(),
  ): Promise<boolean> {
    const all = this.entries();
    const key = historyKey(cluster);
    const e = all[key] ?? {};
    if (what === 'answered' && e.answeredAt) return false;
    if (what === 'answered') e.answeredAt = at.toISOString();
    else e.provisionedAt = at.toISOString();
    delete all[key];
    all[key] = e; // last written last: the oldest go first when over the bound
    const keys = Object.keys(all);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_ENTRIES))) delete all[old];
    await this.memento.update(STATE_KEY, all);
    return true;
  }
}
