/**
 * What the Keyspace tab shows, display-ready: every string from etcd already made printable by
 * the host (src/core/keyspace/render.ts), so the webview only sets text.
 */
export interface KeyspaceTabReport {
  /** "1000000 keys, 303 MB of keys and values at revision 1000002 (read in 12.3 s)" */
  headline: string;
  compaction: string;
  secrets: string;
  /** Some Secrets are stored in plain text (the line is shown as a warning). */
  secretsPlain: boolean;
  leasesLine: string;
  bytes: number;
  resources: Array<{
    resource: string;
    kind: string;
    keys: number;
    bytes: number;
    largest: number;
  }>;
  namespaces: Array<{ namespace: string; keys: number; bytes: number }>;
  /** `key` printable, `rawKey` as etcd has it (sent back to show it). */
  top: Array<{ key: string; rawKey: string; bytes: number; object: string }>;
  leases: Array<{ id: string; keys: number; bytes: number; ttl: string; resources: string }>;
}

export interface KeyspaceTabState {
  cluster: string;
  /** While a scan runs: what it has read so far. */
  running?: { keys: number; bytes: number };
  error?: string;
  /** When the report was made (ms since the epoch). */
  at?: number;
  report?: KeyspaceTabReport;
}
