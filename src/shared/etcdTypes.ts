/**
 * Plain data about an etcd cluster, shared by the core (which produces it), the editor and the
 * webviews (which show it). No behaviour, no Node or VS Code types.
 */

export type EtcdProblemCode =
  | 'refused'
  | 'timeout'
  | 'dns'
  | 'unknown-authority'
  | 'name-mismatch'
  | 'client-cert-rejected'
  | 'permission-denied'
  | 'no-leader'
  | 'alarm'
  | 'missing-file'
  | 'other';

export interface EtcdProblem {
  code: EtcdProblemCode;
  /** One line, for tables and tree descriptions. */
  summary: string;
  /** What to do. */
  hint: string;
}

export interface EtcdMember {
  /** Hex, as etcdctl prints it. */
  id: string;
  /** Empty while the member has not started ("unstarted" in etcdctl). */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface HealthRow {
  endpoint: string;
  health: boolean;
  tookMs: number;
  /** Cluster alarms seen through this endpoint (etcd 3.5 counts them as unhealthy). */
  alarms: string[];
  problem?: EtcdProblem;
}

export interface StatusRow {
  endpoint: string;
  /** Hex, like etcdctl. */
  id: string;
  version: string;
  dbSize: number;
  dbSizeInUse: number;
  leader: string;
  isLeader: boolean;
  isLearner: boolean;
  raftTerm: string;
  raftIndex: string;
  raftAppliedIndex: string;
  errors: string[];
  /** The space quota the member runs with (its /metrics), when asked for and it answered. */
  quotaBackendBytes?: number;
  problem?: EtcdProblem;
}

/** The maintenance timer's last acting run, as it left it in etcd (core/etcd/maintenanceRecord.ts). */
export interface MaintenanceRun {
  /** The host whose timer ran (the leader's then). */
  host: string;
  startedAt: string;
  finishedAt: string;
  result: 'done' | 'nothing' | 'failed' | 'refused';
  summary: string;
  /** Members defragmented, in order. */
  defragmented: string[];
}

export interface ClusterSnapshot {
  at: string;
  endpoints: string[];
  health: HealthRow[];
  status: StatusRow[];
  members: EtcdMember[];
  membersProblem?: EtcdProblem;
  /** `3/3 healthy, leader m2` */
  summary: string;
  healthy: boolean;
  /** The maintenance timer's last run (absent: no timer has run, or the record is unreadable). */
  maintenance?: MaintenanceRun;
}

/**
 * etcd's settings as the inventory asks for them beside what the members really run with
 * (read back from their /metrics), for the health panel (core/etcd/effective.ts builds it).
 */
export interface SettingsInEffect {
  /** The quota the inventory asks for, in words: `2 GiB (etcd's default)`. */
  inventoryQuota: string;
  /** The inventory's other tuning keys as `key value` (its spelling); empty when none is set. */
  inventoryTuning: string[];
  /** Each member's quota from its /metrics, by client URL; absent for a member not read. */
  quotas: Record<string, string>;
  /** Client URLs of the members whose quota is not the inventory's. */
  differs: string[];
  /** The line `status` prints when they differ, naming the members and the command. */
  drift?: string;
  /** Every tuning key each member's etcd runs with, read on its host when asked (never polled). */
  fromHosts?: HostSettings;
  /** The hosts are being read. */
  readingHosts?: boolean;
}

/** One member in a comparison of what etcd runs with on the hosts (core/etcd/runningSettings.ts). */
export interface HostSettingsMember {
  member: string;
  host: string;
  /** Its client URL, as in the status table. */
  endpoint: string;
  /**
   * `process`: the running etcd's environment and arguments; `files`: etcd is not running, so its
   * env file and its unit's command line; `unread`: the host could not be read (`error` says why).
   */
  source: 'process' | 'files' | 'unread';
  pid?: number;
  /** The etcd version of the binary it runs (or would run). */
  version?: string;
  error?: string;
  /** Settings it runs with that no inventory key renders and the tool does not set (`ETCD_X=v`). */
  unknown: string[];
  /** Entries refused as malformed or beyond the bounds (a name, a size, a count). */
  refused: number;
  /** The running etcd's values are not what its env file and unit hold now (it needs a restart). */
  stale?: boolean;
}

/** One tuning key: the inventory's value beside each member's. */
export interface HostSettingsRow {
  /** The inventory's key under `etcd:` (quotaBackendBytes, extraArgs, ...). */
  key: string;
  /** `default` when the inventory leaves it to etcd. */
  inventory: string;
  /** By member name; absent for a member that could not be read. */
  values: Record<string, string>;
  /** Members whose value is not the inventory's. */
  differs: string[];
}

export interface HostSettings {
  /** When the hosts were read (ISO 8601). */
  at: string;
  members: HostSettingsMember[];
  /** The keys set in the inventory or on any member, in the inventory's order. */
  rows: HostSettingsRow[];
  /** What to run, one line each; empty when every member runs with the inventory's values. */
  actions: string[];
}

/** go-humanize's Bytes, as etcdctl prints DB SIZE (SI units: "20 kB", "24 MB"). */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  const e = Math.min(Math.floor(Math.log(n) / Math.log(1000)), units.length - 1);
  const v = n / 1000 ** e;
  return `${v < 10 ? v.toFixed(1) : v.toFixed(0)} ${units[e]}`;
}
