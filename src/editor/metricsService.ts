/**
 * etcd's Prometheus metrics for the health panel's Metrics section and the tree's warning badge.
 * Scrapes every member of every cluster on an interval only while someone looks (a health panel
 * or the Clusters view), one round in flight per cluster, and keeps a rolling window per cluster
 * in memory: points of a few histograms and counters, never whole pages.
 */
import * as vscode from 'vscode';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, K3sEtcdError } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import { clusterMetrics, metricsTargets, scrapeInto } from '../core/metrics/scrape';
import type { ClusterMetrics } from '../core/metrics/types';
import { MetricsWindow } from '../core/metrics/window';
import type { InventoryService } from './inventoryService';

const SECTION = 'k3sEtcd.metrics';

export interface ClusterMetricsState {
  metrics?: ClusterMetrics;
  error?: { code: string; message: string };
}

export class MetricsService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose metrics changed. */
  readonly onDidChange = this.changed.event;
  private readonly windows = new Map<string, { key: string; window: MetricsWindow }>();
  private readonly last = new Map<string, ClusterMetricsState>();
  private readonly inFlight = new Map<string, Promise<ClusterMetricsState>>();
  private readonly watchers = new Set<object>();
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [this.changed];

  constructor(
    private readonly inventory: InventoryService,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration(SECTION)) {
          this.windows.clear();
          this.schedule();
        }
      }),
      inventory.onDidChange((result) => {
        const names = new Set(
          result.status === 'ok' ? result.inventory.clusters.map((c) => c.name) : [],
        );
        for (const name of [...this.last.keys()]) {
          if (names.has(name)) continue;
          this.last.delete(name);
          this.windows.delete(name);
        }
      }),
    );
  }

  config(): { intervalSeconds: number; windowMinutes: number } {
    const c = vscode.workspace.getConfiguration(SECTION);
    return {
      intervalSeconds: c.get<number>('intervalSeconds') ?? 10,
      windowMinutes: c.get<number>('windowMinutes') ?? 15,
    };
  }

  /** The last judgement of every cluster, for the tree. */
  states(): ReadonlyMap<string, ClusterMetrics> {
    const out = new Map<string, ClusterMetrics>();
    for (const [name, s] of this.last) if (s.metrics) out.set(name, s.metrics);
    return out;
  }

  get(cluster: string): ClusterMetricsState | undefined {
    return this.last.get(cluster);
  }

  /** Someone is looking: scrape now and on the interval until released. */
  watch(owner: object): vscode.Disposable {
    this.watchers.add(owner);
    this.schedule();
    if (this.watchers.size === 1) void this.scrapeAll();
    return new vscode.Disposable(() => {
      this.watchers.delete(owner);
      this.schedule();
    });
  }

  private clusters(): Cluster[] {
    const r = this.inventory.current();
    return r?.status === 'ok' ? r.inventory.clusters : [];
  }

  async scrapeAll(): Promise<void> {
    await Promise.all(this.clusters().map((c) => this.scrape(c)));
  }

  private windowFor(cluster: Cluster, key: string): MetricsWindow {
    const existing = this.windows.get(cluster.name);
    if (existing?.key === key) return existing.window;
    // New members, ports or settings: start a fresh window rather than mix series.
    const window = new MetricsWindow({ windowMs: this.config().windowMinutes * 60_000 });
    this.windows.set(cluster.name, { key, window });
    return window;
  }

  /** One scrape round of `cluster`; joins a round already running. */
  scrape(cluster: Cluster): Promise<ClusterMetricsState> {
    const running = this.inFlight.get(cluster.name);
    if (running) return running;
    const timeoutMs = vscode.workspace.getConfiguration('k3sEtcd.health').get<number>('timeoutMs');
    const p = (async (): Promise<ClusterMetricsState> => {
      try {
        const conn = await connectionFor(cluster);
        const targets = metricsTargets(cluster);
        const window = this.windowFor(cluster, JSON.stringify(targets));
        window.retain(targets.map((t) => t.member));
        const round = await scrapeInto(window, targets, {
          tls: conn.tls,
          timeoutMs: timeoutMs ?? 5000,
        });
        for (const [member, why] of round.errors)
          this.log.debug(`Metrics of ${cluster.name}/${member}: ${why}`);
        return { metrics: clusterMetrics(cluster.name, targets, window, round) };
      } catch (err) {
        const code = err instanceof K3sEtcdError ? err.code : 'error';
        if (code !== 'certs-missing')
          this.log.warn(`Metrics of ${cluster.name}: ${errorMessage(err)}`);
        return { error: { code, message: errorMessage(err) } };
      }
    })().then((s) => {
      this.last.set(cluster.name, s);
      this.inFlight.delete(cluster.name);
      this.changed.fire(cluster.name);
      return s;
    });
    this.inFlight.set(cluster.name, p);
    return p;
  }

  private schedule(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    const { intervalSeconds } = this.config();
    if (intervalSeconds > 0 && this.watchers.size > 0)
      this.timer = setInterval(() => void this.scrapeAll(), intervalSeconds * 1000);
  }

  dispose(): void {
    clearInterval(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}
