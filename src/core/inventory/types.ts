/** The inventory model: what `k3s-etcd.yaml` describes once parsed, defaulted and checked. */
import type { EtcdTuning } from '../etcdRelease/flags';

export const INVENTORY_FILE_NAME = 'k3s-etcd.yaml';

export type Datastore = 'external-etcd' | 'k3s-embedded-etcd';
export type Role = 'etcd' | 'k3s-server' | 'k3s-agent';
export type EtcdInstall = 'download' | 'upload' | 'installed';
export type KeyAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';

export interface Host {
  name: string;
  /** etcd member name (defaults to the host name). */
  memberName: string;
  address: string;
  /** Extra certificate SANs from the inventory. */
  sans: string[];
  port: number;
  user: string;
  /** Absolute path, `~` expanded, relative paths resolved from the inventory's folder. */
  identityFile?: string;
  /** SSH settings the inventory spells out itself; they win over `~/.ssh/config`. */
  ssh: { alias?: string; port?: number; user?: string; proxyJump?: string };
  roles: Role[];
  /** 1-based line of the host's entry in the inventory. */
  line: number;
}

export type K3sInstall = 'online' | 'offline' | 'existing';

export interface K3sSettings {
  /** INSTALL_K3S_VERSION; undefined = the installer's stable channel. */
  version?: string;
  install: K3sInstall;
  /** Absolute; holds `k3s` and `install.sh` for install: offline. */
  offlineDir: string;
  disable: string[];
  writeKubeconfigMode?: string;
  tlsSan: string[];
}

export type BackupDestination =
  | { kind: 'host'; host: string; path: string }
  | {
      kind: 's3';
      endpoint: string;
      bucket: string;
      prefix: string;
      region: string;
      /** On the backup hosts (0600): AWS_ACCESS_KEY_ID= and AWS_SECRET_ACCESS_KEY= lines. */
      credentialsFile: string;
    };

/** The cluster's `backup:` block with its defaults (inventory/backup.ts). */
export interface BackupSettings {
  interval: string;
  intervalSeconds: number;
  keep: { hourly: number; daily: number; weekly: number };
  /** Absolute, on this machine: the recipients' PEM public keys. */
  recipientsFile: string;
  /** etcd hosts that get the timer (undefined: every etcd host). */
  hosts?: string[];
  /** On the backup hosts. */
  localDir: string;
  destinations: BackupDestination[];
}

export interface Cluster {
  name: string;
  datastore: Datastore;
  etcd: {
    version: string;
    clientPort: number;
    peerPort: number;
    /** etcd's --listen-metrics-urls on each member's address, when set. */
    metricsPort?: number;
    metricsScheme?: 'http' | 'https';
    /** Client TLS files named by the inventory (absolute); otherwise the generated admin set. */
    tls?: { caFile: string; certFile: string; keyFile: string };
    /** Where provisioning gets the binaries. */
    install: EtcdInstall;
    /** Absolute; with `install: upload`. */
    uploadPath?: string;
    /** URL template with `{version}` and `{arch}`. */
    downloadUrl: string;
    /** On the hosts. */
    dataDir: string;
    initialClusterToken: string;
    /** etcd's own tuning keys (profile applied, sizes in bytes); rendered per version. */
    tuning: EtcdTuning;
  };
  /** K3s servers on the external etcd (the token is never in the inventory). */
  k3s: K3sSettings;
  /** Absolute; adds to (never overrides) ~/.ssh/config's UserKnownHostsFile or ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Backups on the hosts (`k3s-etcd backup install`), when the inventory asks for them. */
  backup?: BackupSettings;
  /** `dir` is absolute; `algorithm` is undefined when the inventory leaves it to the setting. */
  pki: { dir: string; algorithm?: KeyAlgorithm; caValidityDays: number; leafValidityDays: number };
  hosts: Host[];
  /** 1-based line of the cluster's entry in the inventory. */
  line: number;
}

export interface Inventory {
  /** Absolute path of the inventory file. */
  file: string;
  version: 1;
  clusters: Cluster[];
}

export type Severity = 'error' | 'warning';

/** A problem found in the inventory, with a 1-based position in the file. */
export interface Problem {
  severity: Severity;
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  /** Dotted path such as `clusters[0].hosts[2].address`; empty for the whole file. */
  path: string;
  message: string;
}

export type InventoryLoadResult =
  | { status: 'missing'; file: string; problems: Problem[] }
  | { status: 'invalid'; file: string; problems: Problem[] }
  | { status: 'ok'; file: string; inventory: Inventory; problems: Problem[] };
