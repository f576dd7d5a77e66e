/**
 * Live etcd state for the tree and the health panels. One refresh in flight per cluster (a
 * second request joins the first), auto-refresh on an interval only while someone is looking
 * (the Clusters view is visible or a health panel is open), and nothing here ever blocks the UI:
 * every probe is asynchronous with a deadline.
 */
import * as vscode from 'vscode';
import { clusterSnapshot } from '../core/etcd/checks';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, K3sEtcdError } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import type { ClusterHealth, HealthStates } from '../core/tree/model';
import type { InventoryService } from './inventoryService';

const SECTION = 'k3sEtcd.health';

export class HealthService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose state changed. */
  readonly onDidChange = this.changed.event;
  private readonly state = new Map<string, ClusterHealth>();
  private readonly inFlight = new Map<string, Promise<ClusterHealth>>();
  private readonly watchers = new Set<object>();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [this.changed];

  constructor(
    private readonly inventory: InventoryService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) this.schedule();
      }),
      inventory.onDidChange((result) => {
        const names = new Set(
          result.status === 'ok' ? result.inventory.clusters.map((c) => c.name) : [],
        );
        for (const name of [...this.state.keys()]) if (!names.has(name)) this.state.delete(name);
        if (this.watchers.size) void this.refreshAll();
      }),
    );
  }

  states(): HealthStates {
    return this.state;
  }

  get(cluster: string): ClusterHealth | undefined {
    return this.state.get(cluster);
  }

  /** Someone is looking (the view, a panel): refresh now and on the interval until released. */
  watch(owner: object): vscode.Disposable {
    this.watchers.add(owner);
    this.schedule();
    if (this.watchers.size === 1) void this.refreshAll();
    return new vscode.Disposable(() => {
      this.watchers.delete(owner);
      this.schedule();
    });
  }

  private clusters(): Cluster[] {
    const r = this.inventory.current();
    return r?.status === 'ok' ? r.inventory.clusters : [];
  }

  async refreshAll(): Promise<void> {
    await Promise.all(this.clusters().map((c) => this.refresh(c)));
  }

  /** Joins a refresh already running for this cluster instead of starting another. */
  refresh(cluster: Cluster): Promise<ClusterHealth> {
    const running = this.inFlight.get(cluster.name);
    if (running) return running;
    const timeoutMs = vscode.workspace.getConfiguration(SECTION).get<number>('timeoutMs') ?? 5000;
    const p = (async (): Promise<ClusterHealth> => {
      try {
        const conn = await connectionFor(cluster);
        const snapshot = await clusterSnapshot(conn.endpoints, { tls: conn.tls, timeoutMs });
        return { snapshot };
      } catch (err) {
        const code = err instanceof K3sEtcdError ? err.code : 'error';
        if (code !== 'certs-missing')
          this.log.warn(`Health of ${cluster.name}: ${errorMessage(err)}`);
        return { error: { code, message: errorMessage(err) } };
      }
    })().then((h) => {
      this.state.set(cluster.name, h);
      this.inFlight.delete(cluster.name);
      this.changed.fire(cluster.name);
      return h;
    });
    this.inFlight.set(cluster.name, p);
    return p;
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    const seconds =
      vscode.workspace.getConfiguration(SECTION).get<number>('refreshIntervalSeconds') ?? 10;
    if (seconds > 0 && this.watchers.size > 0) {
      this.timer = setInterval(() => void this.refreshAll(), seconds * 1000);
    }
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
