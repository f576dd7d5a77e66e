/**
 * Per-cluster state that is fetched only while someone looks (the Clusters view is visible or a
 * health panel is open): one fetch in flight per cluster (a second request joins the first),
 * refreshed on an interval from the settings while watched, and forgotten when a cluster leaves
 * the inventory. Live health and metrics are both made this way. Nothing is fetched and no
 * interval runs while the workspace is untrusted (Restricted Mode); trust starts them.
 */
import * as vscode from 'vscode';
import type { Cluster } from '../core/inventory/types';
import type { InventoryService } from './inventoryService';
import type { TrustGuard } from './trust';

export abstract class ClusterPoller<T> implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose state changed. */
  readonly onDidChange = this.changed.event;
  protected readonly state = new Map<string, T>();
  private readonly inFlight = new Map<string, Promise<T>>();
  private readonly watchers = new Set<object>();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [this.changed];

  /**
   * `section`: the settings section whose changes reschedule; `refreshOnInventoryChange`: fetch
   * again at once when the inventory changes while watched.
   */
  constructor(
    protected readonly inventory: InventoryService,
    private readonly trust: TrustGuard,
    section: string,
    refreshOnInventoryChange: boolean,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(section)) this.configChanged();
      }),
      inventory.onDidChange((result) => {
        const names = new Set(
          result.status === 'ok' ? result.inventory.clusters.map((c) => c.name) : [],
        );
        for (const name of [...this.state.keys()]) if (!names.has(name)) this.forget(name);
        if (refreshOnInventoryChange && this.watchers.size) void this.refreshAll();
      }),
      // Trusted at last: whoever is looking gets live state now and on the interval.
      trust.onDidGrant(() => {
        this.schedule();
        if (this.watchers.size) void this.refreshAll();
      }),
    );
  }

  /** What one cluster is now; never throws (a failure is part of the state). */
  protected abstract fetch(cluster: Cluster): Promise<T>;

  /** Seconds between refreshes while watched; 0 turns the interval off. */
  protected abstract intervalSeconds(): number;

  /** A cluster left the inventory. */
  protected forget(name: string): void {
    this.state.delete(name);
  }

  /** The section's settings changed. */
  protected configChanged(): void {
    this.schedule();
  }

  /** Tells the listeners that `name`'s state changed outside a fetch. */
  protected notify(name: string): void {
    this.changed.fire(name);
  }

  get(cluster: string): T | undefined {
    return this.state.get(cluster);
  }

  /** Someone is looking: refresh now and on the interval until released. */
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

  /**
   * Joins a refresh already running for this cluster instead of starting another. In Restricted
   * Mode nothing is fetched: the last state (none) is what there is.
   */
  refresh(cluster: Cluster): Promise<T | undefined> {
    if (!this.trust.trusted) return Promise.resolve(this.state.get(cluster.name));
    const running = this.inFlight.get(cluster.name);
    if (running) return running;
    const p = this.fetch(cluster).then((value) => {
      this.state.set(cluster.name, value);
      this.inFlight.delete(cluster.name);
      this.changed.fire(cluster.name);
      return value;
    });
    this.inFlight.set(cluster.name, p);
    return p;
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    const seconds = this.intervalSeconds();
    if (seconds > 0 && this.watchers.size > 0 && this.trust.trusted)
      this.timer = setInterval(() => void this.refreshAll(), seconds * 1000);
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
