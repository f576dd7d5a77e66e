/**
 * Live etcd state for the tree and the health panels: health, status and members of every
 * cluster, fetched while someone looks (see ClusterPoller). Nothing here ever blocks the UI:
 * every probe is asynchronous with a deadline. When the person acts (a health panel opened,
 * Refresh) and nothing of a cluster answers that this workspace never saw answer, its member
 * hosts are asked whether etcd's unit is there (core/tree/unitLook.ts), so a cluster provisioned
 * from elsewhere and now down is red, not "not provisioned yet".
 */
import type * as vscode from 'vscode';
import { Config } from './config';
import { clusterSnapshot } from '../core/etcd/checks';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, K3sEtcdError } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import type { SshContext } from '../core/ssh/hostSession';
import type { ClusterHealth, HealthStates } from '../core/tree/model';
import { looksUnprovisioned } from '../core/tree/provisioned';
import { lookForUnit, unitLookOf } from '../core/tree/unitLook';
import { ClusterPoller } from './clusterPoller';
import type { InventoryService } from './inventoryService';
import { ClusterHistoryStore } from './tree/clusterHistory';
import type { TrustGuard } from './trust';

const SECTION = 'k3sEtcd.health';

export class HealthService extends ClusterPoller<ClusterHealth> {
  private firstLogged = false;
  /** What this workspace has seen of each cluster (the tree and the panels read the same). */
  readonly history: ClusterHistoryStore;
  private readonly looks = new Map<string, Promise<void>>();

  constructor(
    inventory: InventoryService,
    private readonly guard: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
    workspaceState: vscode.Memento,
    /** When the bundle began to load (performance.now()), for the first answer's timing. */
    private readonly activationStart = performance.now(),
  ) {
    super(inventory, guard, SECTION, true);
    this.history = new ClusterHistoryStore(workspaceState);
  }

  /**
   * Only after something the person did (never on the interval): when nothing of `cluster`
   * answered at the last refresh and it looks not provisioned, asks each member host whether
   * etcd's unit is there, one short command each over `ssh()`, whose prompts must never ask (a
   * host that needs a password is unread, and the words say so). Never in Restricted Mode; one
   * look per cluster at a time.
   */
  lookForUnit(cluster: Cluster, ssh: () => Promise<SshContext>): Promise<void> {
    const snapshot = this.get(cluster.name)?.snapshot;
    if (
      !this.guard.trusted ||
      cluster.datastore !== 'external-etcd' ||
      !snapshot ||
      !looksUnprovisioned(snapshot, this.history.of(cluster))
    )
      return Promise.resolve();
    const running = this.looks.get(cluster.name);
    if (running) return running;
    const look = (async () => {
      const answers = await lookForUnit(cluster, await ssh());
      const { seen, look } = unitLookOf(answers, new Date());
      this.log.info(
        `etcd's unit on the hosts of ${cluster.name}: ${answers.map((a) => `${a.host} ${a.present === undefined ? `unread (${a.why ?? '?'})` : a.present ? 'present' : 'absent'}`).join(', ')}`,
      );
      if (seen) await this.history.note(cluster, 'unitSeen');
      else await this.history.noteUnitLook(cluster, look);
      this.notify(cluster.name);
    })()
      .catch((err: unknown) =>
        this.log.warn(`Looking for etcd's unit on ${cluster.name}: ${errorMessage(err)}`),
      )
      .finally(() => this.looks.delete(cluster.name));
    this.looks.set(cluster.name, look);
    return look;
  }

  states(): HealthStates {
    return this.state;
  }

  protected intervalSeconds(): number {
    return Config.get('healthRefreshIntervalSeconds');
  }

  protected async fetch(cluster: Cluster): Promise<ClusterHealth> {
    const timeoutMs = Config.get('healthTimeoutMs');
    try {
      const t0 = performance.now();
      const conn = await connectionFor(cluster);
      const snapshot = await clusterSnapshot(conn.endpoints, { tls: conn.tls, timeoutMs });
      if (!this.firstLogged) {
        this.firstLogged = true;
        const now = performance.now();
        this.log.info(
          `First health of ${cluster.name} ${(now - this.activationStart).toFixed(1)} ms after ` +
            `activation began (the refresh ${(now - t0).toFixed(1)} ms: ${snapshot.summary})`,
        );
      }
      return { snapshot };
    } catch (err) {
      const code = err instanceof K3sEtcdError ? err.code : 'error';
      if (code !== 'certs-missing')
        this.log.warn(`Health of ${cluster.name}: ${errorMessage(err)}`);
      return { error: { code, message: errorMessage(err) } };
    }
  }
}
