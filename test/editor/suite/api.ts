/**
 * What the in-host suites expect of the object `activate()` returns, checked at run time so a
 * wrong shape fails with a message instead of a TypeError. Kept structural on purpose: the suites
 * test the built extension from outside, as another extension would see it.
 */
import assert from 'node:assert/strict';
import * as vscode from 'vscode';

export const EXTENSION_ID = 'k3s-etcd.k3s-etcd';

export interface TreeNodeLike {
  kind: string;
  label: string;
  /** The model names clusters in `cluster` and hosts in `host`; `name` is accepted too. */
  name?: string;
  cluster?: string;
  host?: string;
}

/** The name of a cluster or host node, whichever field carries it. */
export function nodeName(n: TreeNodeLike): string {
  if (n.name !== undefined) return n.name;
  if (n.kind === 'cluster' && n.cluster !== undefined) return n.cluster;
  if (n.kind === 'host' && n.host !== undefined) return n.host;
  return n.label;
}
export interface MemberLike {
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}
export interface K3sEtcdApiLike {
  tree: vscode.TreeDataProvider<TreeNodeLike>;
  whenInventoryLoaded(): Promise<unknown>;
  listMembers(endpoints: string[]): Promise<MemberLike[]>;
  activationMs: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

export function assertApi(v: unknown): K3sEtcdApiLike {
  assert.ok(isRecord(v), `activate() returned ${String(v)}, expected the API object`);
  const tree = v['tree'];
  assert.ok(isRecord(tree), 'api.tree is missing');
  assert.equal(typeof tree['getChildren'], 'function', 'api.tree.getChildren is not a function');
  assert.equal(typeof tree['getTreeItem'], 'function', 'api.tree.getTreeItem is not a function');
  assert.equal(
    typeof v['whenInventoryLoaded'],
    'function',
    'api.whenInventoryLoaded is not a function',
  );
  assert.equal(typeof v['listMembers'], 'function', 'api.listMembers is not a function');
  assert.equal(typeof v['activationMs'], 'number', 'api.activationMs is not a number');
  return v as unknown as K3sEtcdApiLike;
}

export function assertNode(v: unknown): TreeNodeLike {
  assert.ok(isRecord(v), `tree node is ${String(v)}`);
  assert.equal(
    typeof v['kind'],
    'string',
    `tree node without kind: ${JSON.stringify(v).slice(0, 300)}`,
  );
  assert.equal(
    typeof v['label'],
    'string',
    `tree node without label: ${JSON.stringify(v).slice(0, 300)}`,
  );
  return v as unknown as TreeNodeLike;
}

export async function children(
  api: K3sEtcdApiLike,
  parent?: TreeNodeLike,
): Promise<TreeNodeLike[]> {
  const got: unknown = await api.tree.getChildren(parent);
  assert.ok(Array.isArray(got), `getChildren(${parent?.label ?? 'root'}) returned ${String(got)}`);
  return (got as unknown[]).map(assertNode);
}

function summary(nodes: TreeNodeLike[]): string {
  return nodes.map((n) => `${n.kind}:${nodeName(n)}`).join(', ') || '(none)';
}

export function itemLabel(item: vscode.TreeItem): string | undefined {
  const l = item.label;
  return typeof l === 'string' ? l : l?.label;
}

/** The cluster `name` at the root, with its host children; checks what a person would see too. */
export async function assertClusterTree(
  api: K3sEtcdApiLike,
  name: string,
  hosts: string[],
): Promise<void> {
  await api.whenInventoryLoaded();
  const roots = await children(api);
  const cluster = roots.find((n) => n.kind === 'cluster' && nodeName(n) === name);
  assert.ok(cluster, `no cluster node named ${name} at the root; got ${summary(roots)}`);
  const item = await api.tree.getTreeItem(cluster);
  assert.equal(itemLabel(item), cluster.label, 'the tree item shows another label than the node');
  assert.equal(
    cluster.label,
    name,
    'the cluster node is labelled with something else than its name',
  );
  assert.notEqual(
    item.collapsibleState ?? vscode.TreeItemCollapsibleState.None,
    vscode.TreeItemCollapsibleState.None,
    'the cluster tree item cannot be expanded',
  );
  const kids = await children(api, cluster);
  const hostNodes = kids.filter((n) => n.kind === 'host');
  assert.deepEqual(hostNodes.map(nodeName), hosts, `children of ${name}: ${summary(kids)}`);
  for (const h of hostNodes) {
    const hi = await api.tree.getTreeItem(h);
    assert.equal(itemLabel(hi), h.label);
    assert.equal(h.label, nodeName(h), 'a host node is labelled with something else than its name');
  }
}

/** The extension, activated; `activate()` must not throw. */
export async function activated(): Promise<{
  ext: vscode.Extension<unknown>;
  api: K3sEtcdApiLike;
}> {
  const ext = vscode.extensions.getExtension<unknown>(EXTENSION_ID);
  assert.ok(ext, `extension ${EXTENSION_ID} is not present`);
  const api = await ext.activate();
  assert.equal(ext.isActive, true, 'extension is not active after activate()');
  return { ext, api: assertApi(api ?? ext.exports) };
}
