/**
 * Typed messages between webviews and the extension host. Each message is a descriptor with a
 * literal `method` and an `is()` guard; both sides import this module, so a rename breaks the
 * build instead of silently dropping messages.
 */
import type { PerfLoad, PerfProgress, PerfResult } from './perfTypes';
import type { ClusterMetrics } from './metricsTypes';
import type { ClusterSnapshot, SettingsInEffect } from './etcdTypes';
import type { KeyspaceTabState } from './keyspaceTypes';

export interface Message<M extends string, P> {
  method: M;
  params: P;
}

export interface MessageType<M extends string, P> {
  readonly method: M;
  create(params: P): Message<M, P>;
  is(msg: unknown): msg is Message<M, P>;
}

function messageType<P>() {
  return <M extends string>(method: M): MessageType<M, P> => ({
    method,
    create: (params: P) => ({ method, params }),
    is: (msg: unknown): msg is Message<M, P> =>
      typeof msg === 'object' && msg !== null && (msg as { method?: unknown }).method === method,
  });
}

/** Webview → host commands. */
export const notification = messageType;
export const command = messageType;

// ------------------------------------------------------------------------------------------
// Cluster overview panel

export interface OverviewHost {
  name: string;
  sshTarget: string;
  roles: string[];
  clientUrl?: string;
  peerUrl?: string;
}

export interface OverviewState {
  cluster: string;
  datastore: string;
  etcdVersion: string;
  pkiDir: string;
  hosts: OverviewHost[];
  /** Inventory problems when the file is invalid, so the panel says why it is stale. */
  problems: string[];
}

/** The webview has loaded and wants its state. */
export const ReadyCommand = command<Record<string, never>>()('overview/ready');
/** Ask the host to open the inventory at a host's line. */
export const OpenInventoryCommand = command<{ host?: string }>()('overview/openInventory');
/** Host → webview: new state. */
export const StateNotification = notification<OverviewState>()('overview/didChangeState');

export type WebviewToHost =
  | Message<typeof ReadyCommand.method, Record<string, never>>
  | Message<typeof OpenInventoryCommand.method, { host?: string }>;
export type HostToWebview = Message<typeof StateNotification.method, OverviewState>;

// ------------------------------------------------------------------------------------------
// etcd health panel

export type HealthSection = 'health' | 'status' | 'members';

export interface HealthPanelState {
  cluster: string;
  snapshot?: ClusterSnapshot;
  /** Why there is no snapshot; `certs-missing` shows a Generate button. */
  error?: { code: string; message: string };
  refreshing: boolean;
  /** Inventory member name for each client URL. */
  names: Record<string, string>;
  /**
   * Nothing answers and this workspace never saw the cluster answer nor provisioned it (the
   * tree's decision, core/tree/provisioned.ts): a neutral notice with Provision etcd, no red.
   */
  notProvisioned?: boolean;
  /**
   * With `notProvisioned`: whether the member hosts confirm it (every one read, none has etcd's
   * unit) and, in words, what they said or why it is not known.
   */
  unitLook?: { confirmed: boolean; words: string };
  /** The inventory's tuning beside what each member runs with (the Status tab). */
  settings?: SettingsInEffect;
  /**
   * The backups' freshness as the Backups node says it, for a cluster with a backup block: not
   * read yet, fresh, or why not (a warning with Show Backup Status).
   */
  backups?: { state: 'unread' | 'fresh' | 'stale'; words: string; problems: string[] };
}

export const HealthReadyCommand = command<Record<string, never>>()('health/ready');
export const HealthRefreshCommand = command<Record<string, never>>()('health/refresh');
export const HealthCopyCommand = command<{ section: HealthSection }>()('health/copyMarkdown');
export const HealthOpenCliCommand = command<{ section: HealthSection }>()('health/openCli');
export const HealthGenerateCertsCommand = command<Record<string, never>>()('health/generateCerts');
/** Run "Provision etcd" / "Preview Provisioning Plan" on the panel's cluster. */
export const HealthProvisionCommand = command<Record<string, never>>()('health/provision');
export const HealthPreviewPlanCommand = command<Record<string, never>>()('health/previewPlan');
/** Run "Show Backup Status" on the panel's cluster. */
export const HealthShowBackupsCommand = command<Record<string, never>>()('health/showBackups');
/** Read what etcd runs with on every member's host (SSH, trusted workspaces only). */
export const HealthReadSettingsCommand = command<Record<string, never>>()('health/readSettings');
export const HealthStateNotification = notification<HealthPanelState>()('health/didChangeState');

export type HealthWebviewToHost =
  | Message<typeof HealthReadyCommand.method, Record<string, never>>
  | Message<typeof HealthRefreshCommand.method, Record<string, never>>
  | Message<typeof HealthCopyCommand.method, { section: HealthSection }>
  | Message<typeof HealthOpenCliCommand.method, { section: HealthSection }>
  | Message<typeof HealthGenerateCertsCommand.method, Record<string, never>>
  | Message<typeof HealthProvisionCommand.method, Record<string, never>>
  | Message<typeof HealthPreviewPlanCommand.method, Record<string, never>>
  | Message<typeof HealthShowBackupsCommand.method, Record<string, never>>
  | Message<typeof HealthReadSettingsCommand.method, Record<string, never>>;

// ------------------------------------------------------------------------------------------
// Performance check (in the etcd health panel)

export interface PerfReportSummary {
  file: string;
  startedAt: string;
  load: PerfLoad;
  verdict: 'PASS' | 'FAIL' | 'CANCELLED';
  rps: number;
  target: number;
}

/** The space the last run left behind and the offer to give it back, until that is done. */
export interface PerfReclaim {
  state: 'offered' | 'running' | 'done' | 'failed';
  /** In words: what the check left behind, or what compaction and defragmentation did. */
  message: string;
}

export interface PerfPanelState {
  /** Present while a check runs on this cluster (also when started elsewhere). */
  running?: { load: PerfLoad; totalMs: number; phase: 'starting' | 'writing' | 'cleaning' };
  /** Seconds so far (or of the last run). */
  seconds: PerfProgress[];
  /** The last finished run. */
  result?: PerfResult;
  error?: string;
  /** After a run: the space its writes still take, with a button to reclaim it. */
  reclaim?: PerfReclaim;
  reports: PerfReportSummary[];
}

export const PerfRunCommand = command<{ load: PerfLoad; durationSec: number }>()('perf/run');
export const PerfCancelCommand = command<Record<string, never>>()('perf/cancel');
export const PerfExportCommand = command<{ file: string }>()('perf/export');
export const PerfCompareCommand = command<{ a: string; b: string }>()('perf/compare');
/** The reclaim button's words, in the panel and the notification alike. */
export const PERF_RECLAIM_LABEL = 'Compact and Defragment';
/** Compact at the last run's delete revision and defragment every member. */
export const PerfReclaimCommand = command<Record<string, never>>()('perf/reclaim');
export const PerfStateNotification = notification<PerfPanelState>()('perf/didChangeState');

export type PerfWebviewToHost =
  | Message<typeof PerfRunCommand.method, { load: PerfLoad; durationSec: number }>
  | Message<typeof PerfCancelCommand.method, Record<string, never>>
  | Message<typeof PerfExportCommand.method, { file: string }>
  | Message<typeof PerfCompareCommand.method, { a: string; b: string }>
  | Message<typeof PerfReclaimCommand.method, Record<string, never>>;

// ------------------------------------------------------------------------------------------
// Metrics (in the etcd health panel)

export interface MetricsPanelState {
  /** The last judgement; absent before the first scrape. */
  metrics?: ClusterMetrics;
  error?: { code: string; message: string };
  intervalSeconds: number;
  windowMinutes: number;
}

export const MetricsRefreshCommand = command<Record<string, never>>()('metrics/refresh');
/**
 * The action of the db-quota and db-fragmented findings (and of a NOSPACE banner): runs
 * "Maintain etcd…" on the panel's cluster, which turns into the rescue at NOSPACE.
 */
export const MetricsMaintainCommand = command<Record<string, never>>()('metrics/maintain');
/** The action's words, where the panel shows it. */
export const METRICS_MAINTAIN_LABEL = 'Maintain etcd…';
export const MetricsStateNotification = notification<MetricsPanelState>()('metrics/didChangeState');

export type MetricsWebviewToHost =
  | Message<typeof MetricsRefreshCommand.method, Record<string, never>>
  | Message<typeof MetricsMaintainCommand.method, Record<string, never>>;

// ------------------------------------------------------------------------------------------
// Keyspace (in the etcd health panel): scanned on demand only

export type { KeyspaceTabReport, KeyspaceTabState } from './keyspaceTypes';

/** Scan the keyspace now (the tab opened, or Scan again). */
export const KeyspaceScanCommand = command<Record<string, never>>()('keyspace/scan');
export const KeyspaceCancelCommand = command<Record<string, never>>()('keyspace/cancel');
/** Open one key's decoded value (the key as etcd has it). */
export const KeyspaceShowKeyCommand = command<{ key: string }>()('keyspace/showKey');
export const KeyspaceStateNotification =
  notification<KeyspaceTabState>()('keyspace/didChangeState');

export type KeyspaceWebviewToHost =
  | Message<typeof KeyspaceScanCommand.method, Record<string, never>>
  | Message<typeof KeyspaceCancelCommand.method, Record<string, never>>
  | Message<typeof KeyspaceShowKeyCommand.method, { key: string }>;
