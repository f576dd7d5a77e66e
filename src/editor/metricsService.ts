/**
 * etcd's Prometheus metrics for the health panel's Metrics section and the tree's warning badge.
 * Every member of every cluster is scraped while someone looks (see ClusterPoller), and a rolling
 * window per cluster is kept in memory: points of a few histograms and counters, never whole
 * pages.
 */
import type * as vscode from 'vscode';
import { Config } from './config';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, K3sEtcdError } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import { clusterMetrics, scrapeInto } from '../core/metrics/scrape';
import { metricsTargets } from '../core/etcd/scrape';
import type { ClusterMetrics } from '../shared/metricsTypes';
import { MetricsWindow } from '../core/metrics/window';
import { ClusterPoller } from './clusterPoller';
import type { InventoryService } from './inventoryService';
import type { TrustGuard } from './trust';

const SECTION = 'k3sEtcd.metrics';

export interface ClusterMetricsState {
  metrics?: ClusterMetrics;
  error?: { code: string; message: string };
}

export class MetricsService extends ClusterPoller<ClusterMetricsState> {
  private readonly windows = new Map<string, { key: string; window: MetricsWindow }>();

  constructor(
    inventory: InventoryService,
    trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super(inventory, trust, SECTION, false);
  }

  config(): { intervalSeconds: number; windowMinutes: number } {
    return {
      intervalSeconds: Config.get('metricsIntervalSeconds'),
      windowMinutes: Config.get('metricsWindowMinutes'),
    };
  }

  protected intervalSeconds(): number {
    return this.config().intervalSeconds;
  }

  protected override configChanged(): void {
    this.windows.clear();
    super.configChanged();
  }

  protected override forget(name: string): void {
    super.forget(name);
    this.windows.delete(name);
  }

  /** The last judgement of every cluster, for the tree. */
  states(): ReadonlyMap<string, ClusterMetrics> {
    const out = new Map<string, ClusterMetrics>();
    for (const [name, s] of this.state) if (s.metrics) out.set(name, s.metrics);
    return out;
  }

  private windowFor(cluster: Cluster, key: string): MetricsWindow {
    const existing = this.windows.get(cluster.name);
    if (existing?.key === key) return existing.window;
    // New members, ports or settings: start a fresh window rather than mix series.
    const window = new MetricsWindow({ windowMs: this.config().windowMinutes * 60_000 });
    this.windows.set(cluster.name, { key, window });
    return window;
  }

  /** One scrape round of `cluster`. */
  protected async fetch(cluster: Cluster): Promise<ClusterMetricsState> {
    const timeoutMs = Config.get('healthTimeoutMs');
    try {
      const conn = await connectionFor(cluster);
      const targets = metricsTargets(cluster);
      const window = this.windowFor(cluster, JSON.stringify(targets));
      window.retain(targets.map((t) => t.member));
      const round = await scrapeInto(window, targets, {
        tls: conn.tls,
        timeoutMs,
      });
      for (const [member, why] of round.errors)
        this.log.debug(`Metrics of ${cluster.name}/${member}: ${why}`);
      return {
        metrics: clusterMetrics(
          cluster.name,
          targets,
          window,
          round,
          undefined,
          Config.certificatesWarnDays(),
        ),
      };
    } catch (err) {
      const code = err instanceof K3sEtcdError ? err.code : 'error';
      if (code !== 'certs-missing')
        this.log.warn(`Metrics of ${cluster.name}: ${errorMessage(err)}`);
      return { error: { code, message: errorMessage(err) } };
    }
  }
}
