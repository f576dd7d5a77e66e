/**
 * The extension's one context object: the VS Code context, the log, and the services the
 * feature registrars share. Built once in `activate`; no global mutable state elsewhere.
 */
import type * as vscode from 'vscode';
import type { BackupService } from './backupService';
import type { CertsCheckService } from './certsCheckService';
import type { HealthService } from './healthService';
import type { InventoryService } from './inventoryService';
import type { K3sStateService } from './k3sStateService';
import type { KeyspaceService } from './keyspaceService';
import type { MetricsService } from './metricsService';
import type { PerfService } from './perfService';
import type { TrustGuard } from './trust';

export interface ExtensionCtx {
  readonly vscodeContext: vscode.ExtensionContext;
  readonly log: vscode.LogOutputChannel;
  /** Workspace trust: nothing connects until the workspace is trusted. */
  readonly trust: TrustGuard;
  readonly inventory: InventoryService;
  readonly health: HealthService;
  /** etcd's Prometheus metrics, scraped while someone looks, judged against etcd's guidance. */
  readonly metrics: MetricsService;
  readonly perf: PerfService;
  /** What fills each cluster's keyspace, scanned on demand only. */
  readonly keyspace: KeyspaceService;
  /** K3s server states, read over SSH when asked. */
  readonly k3s: K3sStateService;
  /** What the backup hosts hold, read over SSH when asked (never polled). */
  readonly backups: BackupService;
  /** What the hosts hold and serve of the certificates, checked over SSH when asked (never polled). */
  readonly certsChecks: CertsCheckService;
  /** Registers a disposable that lives as long as the extension. */
  push(...disposables: vscode.Disposable[]): void;
}
