/**
 * The tree as plain data: clusters > hosts > roles, certificates and backups (`backups.ts`), and
 * inventory problems. The editor layer turns these into TreeItems; the CLI and the tests read
 * them directly. In an untrusted workspace (Restricted Mode) a "Trust this workspace to connect"
 * item comes first and nothing is live.
 */
import { localStamp } from '../format/stamp';
import { describeK3sState, type K3sServerState } from '../k3s/state';
import { basename, join } from 'node:path';
import { formatProblem } from '../inventory/parse';
import type { Cluster, Host, InventoryLoadResult, Problem, Role } from '../inventory/types';
import { etcdHosts, sshTarget } from '../inventory/select';
import type { ClusterSnapshot } from '../etcd/checks';
import type { IndexEntry, PkiIndex } from '../pki/store';
import { formatContextValue, type ContextFlag, type ContextKind } from './contextValue';
import type { ClusterMetrics } from '../../shared/metricsTypes';
import type { RotationProgress } from '../rotate/state';
import { withRotation } from './rotation';
import { etcdMemberRow, NOSPACE_WORDS, type MemberLive, type MemberRow } from './member';
import {
  looksUnprovisioned,
  unitAbsentEverywhere,
  unitLookWords,
  type ClusterHistory,
} from './provisioned';
import { topConsumerLine, type KeyspaceSummary } from '../keyspace/scan';
import { maintenanceRunLine } from '../etcd/maintenanceRecord';
import { backupsNode, type BackupState, type BackupsNode } from './backups';
import { withCertsCheck, withCertsMark, type CertsCheckState } from './certsCheck';

export type { MemberLive } from './member';
export type { ClusterHistory } from './provisioned';
export type { BackupState, BackupsNode } from './backups';
export type { CertsCheckState } from './certsCheck';

interface NodeBase {
  /** Stable across refreshes, so expansion state survives. */
  id: string;
  label: string;
  description?: string;
  tooltip?: string;
  children?: TreeNode[];
}

export interface ClusterNode extends NodeBase {
  kind: 'cluster';
  cluster: string;
  datastore: Cluster['datastore'];
  /** Where the cluster is written in the inventory (1-based line). */
  line: number;
  /**
   * From the last refresh; undefined before the first. `unprovisioned`: nothing answers and
   * nothing says etcd was ever there (neutral, with "Provision etcd" at hand).
   */
  state?: 'healthy' | 'degraded' | 'down' | 'unknown' | 'unprovisioned';
  /** A member reports an armed NOSPACE alarm (the rescue is at hand). */
  noSpace?: true;
  /** The cluster has a backup block (its Backups node and commands). */
  backup?: true;
}

export interface HostNode extends NodeBase {
  kind: 'host';
  cluster: string;
  host: string;
  sshTarget: string;
  line: number;
  /** The last certificate check found something on this host (drift, near expiry, not read). */
  certs?: 'warning' | 'error';
}

export interface RoleNode extends NodeBase {
  kind: 'role';
  role: Role;
  cluster: string;
  host: string;
  /** etcd role only. */
  member?: { name: string; clientUrl: string; peerUrl: string };
  /** etcd role only, once the cluster has been asked. */
  live?: MemberLive;
  /** etcd role only: nothing answers and the cluster looks not provisioned yet. */
  notProvisioned?: MemberRow['notProvisioned'];
  /** etcd role only: the member's metrics break etcd's guidance (the tree shows a warning). */
  metrics?: MemberRow['metrics'];
}

/** What the tree knows of a cluster's etcd right now. */
export interface ClusterHealth {
  snapshot?: ClusterSnapshot;
  /** Why there is no snapshot, e.g. no admin certificate yet. */
  error?: { code: string; message: string };
}

export type HealthStates = ReadonlyMap<string, ClusterHealth>;

export interface TreeInputs {
  indexes?: PkiIndexes;
  health?: HealthStates;
  /** K3s server states by `cluster/host`, as last read. */
  k3s?: ReadonlyMap<string, K3sServerState>;
  /** The last metrics judgement of each cluster (while someone looks). */
  metrics?: ReadonlyMap<string, ClusterMetrics>;
  /** The last keyspace scan of each cluster (made on demand, never polled). */
  keyspace?: ReadonlyMap<string, KeyspaceSummary & { at: number }>;
  /** The last backup status read of each cluster (on demand, never polled). */
  backups?: ReadonlyMap<string, BackupState>;
  /** The last check of the deployed certificates of each cluster (on demand, never polled). */
  certsChecks?: ReadonlyMap<string, CertsCheckState>;
  /** Each cluster's CA rotation under way (rotation.json in its pki folder), if any. */
  rotations?: ReadonlyMap<string, RotationProgress | undefined>;
  /** What the front end has seen of each cluster (answers, provisioning runs), by name. */
  history?: ReadonlyMap<string, ClusterHistory>;
  /** The workspace is not trusted: nothing connects until it is (the tree says so first). */
  restricted?: boolean;
}

export interface ProblemNode extends NodeBase {
  kind: 'problem';
  problem: Problem;
}

export interface CertificatesNode extends NodeBase {
  kind: 'certificates';
  cluster: string;
  /** Absolute pki folder. */
  dir: string;
  state: 'missing' | 'valid' | 'expiring' | 'expired';
  /** What the last check of the hosts said (undefined before one ran). */
  deployed?: 'fine' | 'findings' | 'failed';
  /** A CA rotation under way (rotation.ts): its phase, or a state that cannot be used. */
  rotation?: 'phase-1' | 'phase-2' | 'phase-3' | 'broken';
}

export interface CertificateNode extends NodeBase {
  kind: 'certificate';
  cluster: string;
  /** Absolute paths. */
  file: string;
  keyFile: string;
  certKind: IndexEntry['kind'];
  member?: string;
  expiry: IndexEntry['expiry'];
}

/** Restricted Mode: the item that opens the Workspace Trust editor. */
export interface TrustNode extends NodeBase {
  kind: 'trust';
  /** The command the item runs (VS Code's Manage Workspace Trust). */
  command: string;
}

/** VS Code's command that opens the Workspace Trust editor. */
export const MANAGE_TRUST_COMMAND = 'workbench.trust.manage';

export const trustNode = (): TrustNode => ({
  kind: 'trust',
  id: 'trust',
  label: 'Trust this workspace to connect',
  description: 'Restricted Mode',
  tooltip:
    'This folder is not trusted, so K3s etcd shows its inventory but connects to nothing: no SSH, ' +
    'no etcd health or metrics, no scheduled snapshot, no task. Trust it if you wrote its ' +
    'k3s-etcd.yaml or trust whoever did.',
  command: MANAGE_TRUST_COMMAND,
});

export type TreeNode =
  | ClusterNode
  | HostNode
  | RoleNode
  | ProblemNode
  | CertificatesNode
  | CertificateNode
  | BackupsNode
  | TrustNode;

/** What the tree knows of each cluster's certificates (from pki/<cluster>/index.json). */
export type PkiIndexes = ReadonlyMap<string, PkiIndex | undefined>;

/** What a cluster's rows are drawn from, as last refreshed. */
interface LiveInputs {
  snapshot: ClusterSnapshot | undefined;
  metrics: ClusterMetrics | undefined;
  notProvisioned: boolean;
  /** Every member host was read and none has etcd's unit. */
  unitAbsent: boolean;
}

const ROLE_LABEL: Record<Role, string> = {
  etcd: 'etcd member',
  'k3s-server': 'K3s server',
  'k3s-agent': 'K3s agent',
};

const ROLE_KIND: Record<Role, ContextKind> = {
  etcd: 'member',
  'k3s-server': 'k3sServer',
  'k3s-agent': 'k3sAgent',
};

export function contextValueOf(node: TreeNode): string {
  switch (node.kind) {
    case 'cluster':
      return formatContextValue('cluster', [
        node.datastore === 'external-etcd' ? 'external-etcd' : 'embedded-etcd',
        ...(node.state === 'unprovisioned' ? (['unprovisioned'] as const) : []),
        ...(node.noSpace ? (['nospace'] as const) : []),
        ...(node.backup ? (['backup'] as const) : []),
      ]);
    case 'host': {
      const flags: ContextFlag[] = [];
      for (const child of node.children ?? []) {
        if (child.kind === 'role' && child.role === 'etcd') flags.push('etcd');
        if (child.kind === 'role' && child.role === 'k3s-server') flags.push('k3s-server');
      }
      if (node.certs) flags.push('warning');
      return formatContextValue('host', flags);
    }
    case 'role': {
      const flags: ContextFlag[] = [];
      if (node.live?.leader) flags.push('leader');
      if (node.live?.learner) flags.push('learner');
      if (node.live && !node.live.healthy) flags.push('unhealthy');
      if (node.notProvisioned) flags.push('unprovisioned');
      return formatContextValue(ROLE_KIND[node.role], flags);
    }
    case 'problem':
      return formatContextValue('problem', [node.problem.severity]);
    case 'certificates':
      return formatContextValue('certificates', [
        ...(node.state === 'valid' ? [] : [node.state]),
        ...(node.rotation ? (['rotating'] as const) : []),
      ]);
    case 'certificate': {
      const flags: ContextFlag[] = node.certKind === 'ca' ? ['ca'] : [];
      if (node.expiry === 'expiring' || node.expiry === 'expired') flags.push(node.expiry);
      return formatContextValue('certificate', flags);
    }
    case 'backups':
      return formatContextValue(
        'backups',
        node.state === 'stale' || node.warnings ? ['warning'] : [],
      );
    case 'trust':
      return formatContextValue('trust');
  }
}

function expiryText(e: IndexEntry): string {
  const day = e.notAfter.slice(0, 10);
  switch (e.expiry) {
    case 'expired':
      return `expired ${day}`;
    case 'expiring':
      return `expires in ${e.daysLeft} days (${day})`;
    case 'not-yet-valid':
      return `not valid before ${e.notBefore.slice(0, 10)}`;
    default:
      return `until ${day}`;
  }
}

function certificateNode(cluster: Cluster, e: IndexEntry): CertificateNode {
  return {
    kind: 'certificate',
    id: `cert:${cluster.name}/${e.path}`,
    label: e.name,
    description: expiryText(e),
    tooltip: [
      e.path,
      `subject ${e.subject}`,
      `issuer ${e.issuer}`,
      `SANs ${e.sans.join(', ') || '(none)'}`,
      `usages ${e.extendedKeyUsages.join(', ') || (e.isCa ? 'CA' : '(none)')}`,
      `valid ${e.notBefore.slice(0, 10)} to ${e.notAfter.slice(0, 10)}`,
      `${e.keyType}, SHA-256 ${e.sha256}`,
    ].join('\n'),
    cluster: cluster.name,
    file: join(cluster.pki.dir, e.path),
    keyFile: join(cluster.pki.dir, e.keyPath),
    certKind: e.kind,
    ...(e.member ? { member: e.member } : {}),
    expiry: e.expiry,
  };
}

/** The "Certificates" node of a cluster, with expiry in each child's description. */
export function certificatesNode(
  cluster: Cluster,
  index: PkiIndex | undefined,
  now = new Date(),
): CertificatesNode {
  const base = {
    kind: 'certificates' as const,
    id: `certs:${cluster.name}`,
    label: 'Certificates',
    cluster: cluster.name,
    dir: cluster.pki.dir,
  };
  if (!index || index.entries.length === 0) {
    return {
      ...base,
      state: 'missing',
      description: 'not generated',
      tooltip: `No certificates in ${cluster.pki.dir} yet: run "Generate Certificate Set".`,
    };
  }
  // Expiry is recomputed from the dates, so an index written long ago still tells the truth.
  const entries = index.entries.map((e) => {
    const daysLeft = Math.floor((Date.parse(e.notAfter) - now.getTime()) / 86_400_000);
    const expiry: IndexEntry['expiry'] =
      daysLeft < 0
        ? 'expired'
        : daysLeft < 30
          ? 'expiring'
          : e.expiry === 'not-yet-valid'
            ? e.expiry
            : 'valid';
    return { ...e, daysLeft, expiry };
  });
  const expired = entries.filter((e) => e.expiry === 'expired').length;
  const expiring = entries.filter((e) => e.expiry === 'expiring').length;
  const ca = entries.find((e) => e.kind === 'ca');
  const summary = [
    `${entries.length} certificate${entries.length === 1 ? '' : 's'}`,
    ca ? `CA until ${ca.notAfter.slice(0, 10)}` : 'no CA',
    expired ? `${expired} expired` : '',
    expiring ? `${expiring} expiring` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  return {
    ...base,
    state: expired ? 'expired' : expiring ? 'expiring' : 'valid',
    description: summary,
    tooltip: `${cluster.pki.dir}\n${summary}`,
    children: entries.map((e) => certificateNode(cluster, e)),
  };
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function problemNode(p: Problem, i: number): ProblemNode {
  return {
    kind: 'problem',
    id: `problem:${i}:${p.path}:${p.line}:${p.column}`,
    label: p.path ? `${p.path}: ${p.message}` : p.message,
    description: `${basename(p.file)}:${p.line}:${p.column}`,
    tooltip: formatProblem(p),
    problem: p,
  };
}

function roleNode(
  cluster: Cluster,
  host: Host,
  role: Role,
  live: LiveInputs,
  k3s?: K3sServerState,
): RoleNode {
  const node: RoleNode = {
    kind: 'role',
    id: `role:${cluster.name}/${host.name}/${role}`,
    label: ROLE_LABEL[role],
    role,
    cluster: cluster.name,
    host: host.name,
  };
  if (role === 'etcd')
    Object.assign(
      node,
      etcdMemberRow(
        cluster,
        host,
        live.snapshot,
        live.metrics,
        live.notProvisioned && { unitAbsent: live.unitAbsent },
      ),
    );
  if (role === 'k3s-server' && k3s) {
    node.description = describeK3sState(k3s);
    node.tooltip = [
      `K3s server on ${host.name}, read at ${localStamp(k3s.at)}`,
      k3s.error
        ? `could not read it: ${k3s.error}`
        : `version ${k3s.version ?? '?'}, node ${k3s.nodeStatus ?? 'not answering'}`,
      ...(k3s.datastoreEndpoint ? [`datastore-endpoint ${k3s.datastoreEndpoint}`] : []),
    ].join('\n');
  }
  return node;
}

function hostNode(
  cluster: Cluster,
  host: Host,
  live: LiveInputs,
  k3s?: ReadonlyMap<string, K3sServerState>,
): HostNode {
  const target = sshTarget(host);
  return {
    kind: 'host',
    id: `host:${cluster.name}/${host.name}`,
    label: host.name,
    description: target,
    tooltip: `${host.name}\nSSH ${target}${host.identityFile ? `\nkey ${host.identityFile}` : ''}\nroles: ${host.roles.join(', ')}`,
    cluster: cluster.name,
    host: host.name,
    sshTarget: target,
    line: host.line,
    children: host.roles.map((r) =>
      roleNode(cluster, host, r, live, k3s?.get(`${cluster.name}/${host.name}`)),
    ),
  };
}

function clusterState(
  health: ClusterHealth | undefined,
  notProvisioned: boolean,
): ClusterNode['state'] {
  const snap = health?.snapshot;
  if (!snap) return health?.error ? 'unknown' : undefined;
  if (notProvisioned) return 'unprovisioned';
  const ok = snap.health.filter((h) => h.health).length;
  return ok === snap.health.length ? 'healthy' : ok === 0 ? 'down' : 'degraded';
}

/** The cluster row's description (short: it must fit the sidebar) and its tooltip lines. */
function clusterLive(
  health: ClusterHealth | undefined,
  notProvisioned: boolean,
  members: number,
  history: ClusterHistory | undefined,
  hostsChecked: boolean,
): { text?: string; lines: string[] } {
  const snap = health?.snapshot;
  if (snap && notProvisioned) {
    const refused = snap.health.filter((h) => h.problem?.code === 'refused').length;
    const answers = `no member answers (${refused === snap.health.length ? `connection refused by all ${plural(members, 'member')}` : 'refused or no answer'})`;
    const provision =
      'Provision etcd (the inline action, or right-click > Provision etcd) installs and starts it; Preview Provisioning Plan shows what that would do.';
    // A fact only once every host was read without the unit; until then what this workspace knows.
    if (hostsChecked && unitAbsentEverywhere(history))
      return {
        text: 'not provisioned yet',
        lines: [`Not provisioned yet: ${answers}.`, unitLookWords(history), provision],
      };
    return {
      text: 'not provisioned yet',
      lines: [
        `Not provisioned yet, as far as this workspace knows: ${answers} and it has never seen this cluster answer.`,
        hostsChecked
          ? unitLookWords(history)
          : 'If etcd was provisioned from elsewhere, every member is down.',
        provision,
      ],
    };
  }
  if (snap && snap.health.some((h) => h.alarms.includes('NOSPACE')))
    return {
      text: `${NOSPACE_WORDS} · ${snap.summary}`,
      lines: [
        `${snap.summary} at ${localStamp(snap.at)}`,
        "NOSPACE: the database reached its quota and etcd refuses every write, K3s's included. Maintain etcd… (right-click) rescues it: what fills the space, compaction, defragmentation member by member, disarm, a write that proves it.",
      ],
    };
  if (snap) return { text: snap.summary, lines: [`${snap.summary} at ${localStamp(snap.at)}`] };
  if (health?.error?.code === 'certs-missing')
    return {
      text: 'no certificates yet',
      lines: ['Generate Certificate Set to see health.', health.error.message],
    };
  if (health?.error) return { text: 'health unknown', lines: [health.error.message] };
  return { lines: [] };
}

function clusterNode(
  cluster: Cluster,
  index: PkiIndex | undefined,
  health: ClusterHealth | undefined,
  k3s?: ReadonlyMap<string, K3sServerState>,
  metrics?: ClusterMetrics,
  history?: ClusterHistory,
  keyspace?: KeyspaceSummary & { at: number },
  backups?: BackupState,
  certsCheck?: CertsCheckState,
  rotation?: RotationProgress,
): ClusterNode {
  const members = etcdHosts(cluster).length;
  const store = cluster.datastore === 'external-etcd' ? 'external etcd' : 'K3s embedded etcd';
  const staticText = `${store} · ${plural(cluster.hosts.length, 'host')} · ${plural(members, 'member')}`;
  const notProvisioned = health?.snapshot ? looksUnprovisioned(health.snapshot, history) : false;
  // The hosts are asked for etcd's unit only where this tool installs it (not K3s's own etcd).
  const hostsChecked = cluster.datastore === 'external-etcd';
  const live = clusterLive(health, notProvisioned, members, history, hostsChecked);
  const inputs: LiveInputs = {
    snapshot: health?.snapshot,
    metrics,
    notProvisioned,
    unitAbsent: hostsChecked && unitAbsentEverywhere(history),
  };
  // The maintenance timer's last run: in the tooltip; one that did not end well also in the row.
  const lastRun = health?.snapshot?.maintenance;
  const backupRow = backupsNode(cluster, backups);
  const runFailed = lastRun?.result === 'failed' || lastRun?.result === 'refused';
  const node: ClusterNode = {
    kind: 'cluster',
    id: `cluster:${cluster.name}`,
    label: cluster.name,
    // Live words alone when there are some: the store is in the tooltip.
    description: `${live.text ?? staticText}${runFailed ? ` · scheduled maintenance ${lastRun.result}` : ''}`,
    tooltip: [
      `${cluster.name}: ${store} ${cluster.etcd.version}, client port ${cluster.etcd.clientPort}, peer port ${cluster.etcd.peerPort}`,
      `certificates in ${cluster.pki.dir}${cluster.pki.algorithm ? ` (${cluster.pki.algorithm})` : ''}`,
      ...live.lines,
      ...(keyspace ? [`${topConsumerLine(keyspace)} (scanned ${localStamp(keyspace.at)})`] : []),
      ...(lastRun ? [maintenanceRunLine(lastRun, localStamp)] : []),
    ].join('\n'),
    cluster: cluster.name,
    datastore: cluster.datastore,
    line: cluster.line,
    children: [
      ...cluster.hosts.map((h) => withCertsMark(hostNode(cluster, h, inputs, k3s), certsCheck)),
      withRotation(withCertsCheck(certificatesNode(cluster, index), certsCheck), rotation),
      ...(backupRow ? [backupRow] : []),
    ],
  };
  const state = clusterState(health, notProvisioned);
  if (state) node.state = state;
  if (health?.snapshot?.health.some((h) => h.alarms.includes('NOSPACE'))) node.noSpace = true;
  if (cluster.backup) node.backup = true;
  return node;
}

/**
 * Roots of the tree: in Restricted Mode the trust item, then problems (errors, then warnings),
 * then clusters.
 */
export function buildTree(result: InventoryLoadResult, inputs: TreeInputs = {}): TreeNode[] {
  if (result.status === 'missing') return [];
  const ordered = [...result.problems].sort((a, b) =>
    a.severity === b.severity ? a.line - b.line : a.severity === 'error' ? -1 : 1,
  );
  const problems: TreeNode[] = [
    ...(inputs.restricted ? [trustNode()] : []),
    ...ordered.map(problemNode),
  ];
  if (result.status === 'invalid') return problems;
  return [
    ...problems,
    ...result.inventory.clusters.map((c) =>
      clusterNode(
        c,
        inputs.indexes?.get(c.name),
        inputs.health?.get(c.name),
        inputs.k3s,
        inputs.metrics?.get(c.name),
        inputs.history?.get(c.name),
        inputs.keyspace?.get(c.name),
        inputs.backups?.get(c.name),
        inputs.certsChecks?.get(c.name),
        inputs.rotations?.get(c.name),
      ),
    ),
  ];
}

/** Parent lookup for `TreeDataProvider.getParent` (so `reveal` works). */
export function indexParents(roots: readonly TreeNode[]): Map<string, TreeNode> {
  const parents = new Map<string, TreeNode>();
  const walk = (node: TreeNode) => {
    for (const child of node.children ?? []) {
      parents.set(child.id, node);
      walk(child);
    }
  };
  roots.forEach(walk);
  return parents;
}
