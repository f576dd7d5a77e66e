/**
 * The tree as plain data: clusters > hosts > roles, and inventory problems. The editor layer turns
 * these into TreeItems; the CLI and the tests read them directly.
 */
import { basename, join } from 'node:path';
import { formatProblem } from '../inventory/parse';
import type { Cluster, Host, InventoryLoadResult, Problem, Role } from '../inventory/types';
import { clientUrl, etcdHosts, peerUrl, sshTarget } from '../inventory/urls';
import type { IndexEntry, PkiIndex } from '../pki/store';
import { formatContextValue, type ContextFlag, type ContextKind } from './contextValue';

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
}

export interface HostNode extends NodeBase {
  kind: 'host';
  cluster: string;
  host: string;
  sshTarget: string;
  line: number;
}

export interface RoleNode extends NodeBase {
  kind: 'role';
  role: Role;
  cluster: string;
  host: string;
  /** etcd role only. */
  member?: { name: string; clientUrl: string; peerUrl: string };
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

export type TreeNode =
  ClusterNode | HostNode | RoleNode | ProblemNode | CertificatesNode | CertificateNode;

/** What the tree knows of each cluster's certificates (from pki/<cluster>/index.json). */
export type PkiIndexes = ReadonlyMap<string, PkiIndex | undefined>;

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
      ]);
    case 'host': {
      const flags: ContextFlag[] = [];
      for (const child of node.children ?? []) {
        if (child.kind === 'role' && child.role === 'etcd') flags.push('etcd');
        if (child.kind === 'role' && child.role === 'k3s-server') flags.push('k3s-server');
      }
      return formatContextValue('host', flags);
    }
    case 'role':
      return formatContextValue(ROLE_KIND[node.role]);
    case 'problem':
      return formatContextValue('problem', [node.problem.severity]);
    case 'certificates':
      return formatContextValue('certificates', node.state === 'valid' ? [] : [node.state]);
    case 'certificate': {
      const flags: ContextFlag[] = node.certKind === 'ca' ? ['ca'] : [];
      if (node.expiry === 'expiring' || node.expiry === 'expired') flags.push(node.expiry);
      return formatContextValue('certificate', flags);
    }
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
    `${entries.length} files`,
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

function roleNode(cluster: Cluster, host: Host, role: Role): RoleNode {
  const node: RoleNode = {
    kind: 'role',
    id: `role:${cluster.name}/${host.name}/${role}`,
    label: ROLE_LABEL[role],
    role,
    cluster: cluster.name,
    host: host.name,
  };
  if (role === 'etcd') {
    node.member = {
      name: host.memberName,
      clientUrl: clientUrl(cluster, host),
      peerUrl: peerUrl(cluster, host),
    };
    node.description =
      host.memberName === host.name
        ? node.member.clientUrl
        : `${host.memberName} · ${node.member.clientUrl}`;
    node.tooltip = `etcd member "${host.memberName}"\nclient ${node.member.clientUrl}\npeer ${node.member.peerUrl}`;
  }
  return node;
}

function hostNode(cluster: Cluster, host: Host): HostNode {
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
    children: host.roles.map((r) => roleNode(cluster, host, r)),
  };
}

function clusterNode(cluster: Cluster, index: PkiIndex | undefined): ClusterNode {
  const members = etcdHosts(cluster).length;
  const store = cluster.datastore === 'external-etcd' ? 'external etcd' : 'K3s embedded etcd';
  return {
    kind: 'cluster',
    id: `cluster:${cluster.name}`,
    label: cluster.name,
    description: `${store} · ${plural(cluster.hosts.length, 'host')} · ${plural(members, 'member')}`,
    tooltip: `${cluster.name}: ${store} ${cluster.etcd.version}, client port ${cluster.etcd.clientPort}, peer port ${cluster.etcd.peerPort}\ncertificates in ${cluster.pki.dir} (${cluster.pki.algorithm})`,
    cluster: cluster.name,
    datastore: cluster.datastore,
    line: cluster.line,
    children: [...cluster.hosts.map((h) => hostNode(cluster, h)), certificatesNode(cluster, index)],
  };
}

/** Roots of the tree: problems first (errors, then warnings), then clusters. */
export function buildTree(
  result: InventoryLoadResult,
  indexes: PkiIndexes = new Map(),
): TreeNode[] {
  if (result.status === 'missing') return [];
  const ordered = [...result.problems].sort((a, b) =>
    a.severity === b.severity ? a.line - b.line : a.severity === 'error' ? -1 : 1,
  );
  const problems = ordered.map(problemNode);
  if (result.status === 'invalid') return problems;
  return [
    ...problems,
    ...result.inventory.clusters.map((c) => clusterNode(c, indexes.get(c.name))),
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
