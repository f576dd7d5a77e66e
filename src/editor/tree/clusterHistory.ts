/**
 * What this workspace has seen of each cluster, kept in its workspace state: a member answering,
 * a provisioning task ending well, etcd's unit found on a member host, or the last look for it
 * that found it nowhere (and the hosts it could not read). The tree and the health panel read it
 * to tell "not provisioned yet" (neutral) from "down" (red). The hosts are asked only when the
 * person acts (healthService.ts): SSH may prompt, so never on a timer. Keyed by the cluster's
 * name and client URLs (core/tree/provisioned.ts), so a cluster moved to other hosts starts afresh.
 */
import type * as vscode from 'vscode';
import type { Cluster } from '../../core/inventory/types';
import { historyKey, type ClusterHistory, type UnitLook } from '../../core/tree/provisioned';

const STATE_KEY = 'k3sEtcd.clusterHistory';
/** Old keys are dropped beyond this many (clusters renamed or moved over time). */
const MAX_ENTRIES = 100;
/** Bounds on what a stored look may hold (it is read back as untrusted input). */
const MAX_UNREAD = 64;
const MAX_WORDS = 300;

interface Entry {
  /** ISO times of the first answer seen and the last provisioning run that ended well. */
  answeredAt?: string;
  provisionedAt?: string;
  /** ISO time a member host was first seen with etcd's unit. */
  unitSeenAt?: string;
  /** The last look for the unit that found it on no host it read. */
  unitLook?: UnitLook;
}

/** A stored look, checked: undefined when it is not of the expected shape. */
function checkedLook(value: unknown): UnitLook | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  const unread = v['unread'];
  if (typeof v['at'] !== 'string' || Number.isNaN(Date.parse(v['at'])) || !Array.isArray(unread))
    return undefined;
  const out: UnitLook['unread'] = [];
  for (const u of unread.slice(0, MAX_UNREAD) as unknown[]) {
    if (!u || typeof u !== 'object') return undefined;
    const { host, why } = u as Record<string, unknown>;
    if (typeof host !== 'string' || typeof why !== 'string') return undefined;
    out.push({ host: host.slice(0, MAX_WORDS), why: why.slice(0, MAX_WORDS) });
  }
  return { at: v['at'], unread: out };
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
      if (typeof v['unitSeenAt'] === 'string') e.unitSeenAt = v['unitSeenAt'];
      const look = checkedLook(v['unitLook']);
      if (look) e.unitLook = look;
      out[key] = e;
    }
    return out;
  }

  of(cluster: Cluster): ClusterHistory {
    const e = this.entries()[historyKey(cluster)];
    return {
      ...(e?.answeredAt ? { answered: true } : {}),
      ...(e?.provisionedAt ? { provisioned: true } : {}),
      ...(e?.unitSeenAt ? { unitSeen: true } : {}),
      ...(e?.unitLook && !e.unitSeenAt ? { unitLook: e.unitLook } : {}),
    };
  }

  /** Records what was seen; resolves to whether anything changed. */
  async note(
    cluster: Cluster,
    what: 'answered' | 'provisioned' | 'unitSeen',
    at = new Date(),
  ): Promise<boolean> {
    return this.update(cluster, (e) => {
      if (what === 'answered' && e.answeredAt) return false;
      if (what === 'unitSeen' && e.unitSeenAt) return false;
      if (what === 'answered') e.answeredAt = at.toISOString();
      else if (what === 'unitSeen') {
        e.unitSeenAt = at.toISOString();
        delete e.unitLook;
      } else e.provisionedAt = at.toISOString();
      return true;
    });
  }

  /** Records a look for etcd's unit that found it on no host it read (the last one counts). */
  async noteUnitLook(cluster: Cluster, look: UnitLook): Promise<boolean> {
    return this.update(cluster, (e) => {
      e.unitLook = look;
      return true;
    });
  }

  private async update(cluster: Cluster, change: (e: Entry) => boolean): Promise<boolean> {
    const all = this.entries();
    const key = historyKey(cluster);
    const e = all[key] ?? {};
    if (!change(e)) return false;
    delete all[key];
    all[key] = e; // last written last: the oldest go first when over the bound
    const keys = Object.keys(all);
    for (const old of keys.slice(0, Math.max(0, keys.length - MAX_ENTRIES))) delete all[old];
    await this.memento.update(STATE_KEY, all);
    return true;
  }
}
