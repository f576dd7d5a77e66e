/**
 * The tree as plain data: clusters > hosts > roles, and inventory problems. The editor layer turns
 * these into TreeItems; the CLI and the tests read them directly.
 */
import { basename } from 'node:path';
import { formatProblem } from '../inventory/parse';
import type { Cluster, Host, InventoryLoadResult, Problem, Role } from '../inventory/types';
import { clientUrl, etcdHosts, peerUrl, sshTarget } from '../inventory/urls';
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

export type TreeNode = ClusterNode | HostNode | RoleNode | ProblemNode;

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
  }
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

function clusterNode(cluster: Cluster): ClusterNode {
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
    children: cluster.hosts.map((h) => hostNode(cluster, h)),
  };
}

/** Roots of the tree: problems first (errors, then warnings), then clusters. */
export function buildTree(result: InventoryLoadResult): TreeNode[] {
  if (result.status === 'missing') return [];
  const ordered = [...result.problems].sort((a, b) =>
    a.severity === b.severity ? a.line - b.line : a.severity === 'error' ? -1 : 1,
  );
  const problems = ordered.map(problemNode);
  if (result.status === 'invalid') return problems;
  return [...problems, ...result.inventory.clusters.map(clusterNode)];
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
