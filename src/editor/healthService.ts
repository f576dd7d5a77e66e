/**
 * Live etcd state for the tree and the health panels: health, status and members of every
 * cluster, fetched while someone looks (see ClusterPoller). Nothing here ever blocks the UI:
 * every probe is asynchronous with a deadline.
 */
import type * as vscode from 'vscode';
import { Config } from './config';
import { clusterSnapshot } from '../core/etcd/checks';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, K3sEtcdError } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import type { ClusterHealth, HealthStates } from '../core/tree/model';
import { ClusterPoller } from './clusterPoller';
import type { InventoryService } from './inventoryService';
import type { TrustGuard } from './trust';

const SECTION = 'k3sEtcd.health';

export class HealthService extends ClusterPoller<ClusterHealth> {
  private firstLogged = false;

  constructor(
    inventory: InventoryService,
    trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
    /** When the bundle began to load (performance.now()), for the first answer's timing. */
    private readonly activationStart = performance.now(),
  ) {
    super(inventory, trust, SECTION, true);
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
