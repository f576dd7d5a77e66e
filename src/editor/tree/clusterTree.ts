/**
 * The "Clusters" view. Nodes are the core's plain data (`TreeNode`); TreeItems are made here,
 * at the edge, with codicons and theme colours.
 */
import * as vscode from 'vscode';
import { buildTree, contextValueOf, indexParents, type TreeNode } from '../../core/tree/model';
import { marks, type ClusterMetrics } from '../../shared/metricsTypes';
import { COMMANDS, VIEW_IDS } from '../../shared/commands';
import type { ExtensionCtx } from '../ctx';
import { errorMessage } from '../../core/errors';
import type { Cluster } from '../../core/inventory/types';
import { clusterByName } from '../../core/inventory/select';
import { seenAnswering, type ClusterHistory } from '../../core/tree/provisioned';
import { TASK_TYPE, type K3sEtcdTaskDefinition } from '../tasks/definition';

function iconOf(node: TreeNode): vscode.ThemeIcon {
  switch (node.kind) {
    case 'cluster':
      return new vscode.ThemeIcon('server-environment', liveColor(node.state));
    case 'host':
      // The last certificate check found drift, near expiry or a member serving another certificate here.
      return node.certs
        ? new vscode.ThemeIcon(
            'warning',
            stateColor(node.certs === 'error' ? 'expired' : 'expiring'),
          )
        : new vscode.ThemeIcon('vm');
    case 'role':
      if (node.metrics) {
        return new vscode.ThemeIcon(
          'warning',
          liveColor(node.metrics.level === 'bad' ? 'down' : 'degraded'),
        );
      }
      // Not provisioned yet: neutral, nothing is wrong with it.
      if (node.notProvisioned) return new vscode.ThemeIcon('circle-large-outline');
      if (node.live) {
        return new vscode.ThemeIcon(
          node.live.leader ? 'star-full' : 'database',
          liveColor(!node.live.healthy ? 'down' : node.live.alarms.length ? 'degraded' : 'healthy'),
        );
      }
      return new vscode.ThemeIcon(
        node.role === 'etcd'
          ? 'database'
          : node.role === 'k3s-server'
            ? 'server-process'
            : 'server',
      );
    case 'problem':
      return node.problem.severity === 'error'
        ? new vscode.ThemeIcon('error', new vscode.ThemeColor('problemsErrorIcon.foreground'))
        : new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
    case 'certificates':
      // A CA rotation under way: its own icon until the last phase ends.
      if (node.rotation)
        return new vscode.ThemeIcon(
          'sync',
          stateColor(node.rotation === 'broken' ? 'expired' : 'expiring'),
        );
      return new vscode.ThemeIcon(
        'shield',
        stateColor(
          node.deployed === 'findings' && node.state === 'valid' ? 'expiring' : node.state,
        ),
      );
    case 'certificate':
      return new vscode.ThemeIcon(
        node.certKind === 'ca' ? 'verified' : 'lock',
        stateColor(node.expiry),
      );
    case 'backups':
      return node.state === 'stale'
        ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'))
        : new vscode.ThemeIcon(
            'archive',
            node.state === 'fresh' ? new vscode.ThemeColor('testing.iconPassed') : undefined,
          );
    case 'trust':
      return new vscode.ThemeIcon(
        'workspace-untrusted',
        new vscode.ThemeColor('problemsWarningIcon.foreground'),
      );
  }
}

/** Live state in theme colours: passed, warning, error; unknown and unprovisioned neutral. */
function liveColor(
  state: 'healthy' | 'degraded' | 'down' | 'unknown' | 'unprovisioned' | undefined,
): vscode.ThemeColor | undefined {
  switch (state) {
    case 'healthy':
      return new vscode.ThemeColor('testing.iconPassed');
    case 'degraded':
      return new vscode.ThemeColor('problemsWarningIcon.foreground');
    case 'down':
      return new vscode.ThemeColor('problemsErrorIcon.foreground');
    default:
      return undefined;
  }
}

/** Expired: error colour; expiring: warning colour; otherwise the theme's default. */
function stateColor(state: string): vscode.ThemeColor | undefined {
  if (state === 'expired') return new vscode.ThemeColor('problemsErrorIcon.foreground');
  if (state === 'expiring') return new vscode.ThemeColor('problemsWarningIcon.foreground');
  return undefined;
}

export class ClusterTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private roots: TreeNode[] = [];
  private parents = new Map<string, TreeNode>();

  setRoots(roots: TreeNode[]): void {
    this.roots = roots;
    this.parents = indexParents(roots);
    this.changed.fire(undefined);
  }

  getChildren(element?: TreeNode): TreeNode[] {
    return element ? (element.children ?? []) : this.roots;
  }

  getParent(element: TreeNode): TreeNode | undefined {
    return this.parents.get(element.id);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const collapsible = node.children?.length
      ? vscode.TreeItemCollapsibleState.Collapsed
      : vscode.TreeItemCollapsibleState.None;
    const item = new vscode.TreeItem(node.label, collapsible);
    item.id = node.id;
    item.contextValue = contextValueOf(node);
    item.iconPath = iconOf(node);
    if (node.description !== undefined) item.description = node.description;
    if (node.tooltip !== undefined) item.tooltip = node.tooltip;
    // Screen readers hear the label and the state, not the long tooltip.
    item.accessibilityInformation = {
      label: node.description ? `${node.label}, ${node.description}` : node.label,
    };
    if (node.kind === 'problem') {
      item.command = { command: COMMANDS.problemReveal, title: 'Go to Problem', arguments: [node] };
    } else if (node.kind === 'trust') {
      item.command = { command: node.command, title: 'Manage Workspace Trust' };
    } else if (node.kind === 'certificate') {
      item.command = {
        command: COMMANDS.certsInspect,
        title: 'Inspect Certificate',
        arguments: [node],
      };
    }
    return item;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

/** Which member breaks which rule at which level: what the tree shows of the metrics. */
function metricsBadges(states: ReadonlyMap<string, ClusterMetrics>): string {
  const out: string[] = [];
  for (const [cluster, m] of states)
    for (const member of m.members)
      for (const f of member.findings)
        if (marks(f.level)) out.push(`${cluster}/${member.member}/${f.rule}/${f.level}`);
  return out.join(',');
}

export function registerTree(ctx: ExtensionCtx): ClusterTreeProvider {
  const provider = new ClusterTreeProvider();
  const view = vscode.window.createTreeView(VIEW_IDS.clusters, {
    treeDataProvider: provider,
    showCollapseAll: true,
  });
  const history = ctx.health.history;
  const clusters = (): Cluster[] => {
    const result = ctx.inventory.current();
    return result?.status === 'ok' ? result.inventory.clusters : [];
  };
  const remember = (cluster: Cluster, what: 'answered' | 'provisioned') =>
    history.note(cluster, what).catch((err: unknown) => {
      ctx.log.warn(`cannot record that ${cluster.name} ${what}: ${errorMessage(err)}`);
      return false;
    });
  let badges = '';
  const update = () => {
    badges = metricsBadges(ctx.metrics.states());
    const result = ctx.inventory.current();
    const health = ctx.health.states();
    const seen = new Map<string, ClusterHistory>();
    for (const c of clusters()) {
      const snapshot = health.get(c.name)?.snapshot;
      // Once a member answers, all of them refusing later is a cluster down, not a new one.
      if (snapshot && seenAnswering(c, snapshot)) void remember(c, 'answered');
      seen.set(c.name, history.of(c));
    }
    provider.setRoots(
      result
        ? buildTree(result, {
            indexes: ctx.inventory.pkiIndexes(),
            rotations: ctx.inventory.rotations(),
            health,
            k3s: ctx.k3s.states(),
            metrics: ctx.metrics.states(),
            keyspace: ctx.keyspace.summaries(),
            backups: ctx.backups.states(),
            certsChecks: ctx.certsChecks.states(),
            history: seen,
            restricted: !ctx.trust.trusted,
          })
        : [],
    );
    const errors = result?.problems.filter((p) => p.severity === 'error').length ?? 0;
    view.badge =
      errors && result?.status === 'invalid'
        ? { value: errors, tooltip: `${errors} inventory error(s)` }
        : undefined;
  };
  // Live state is fetched only while the view is visible (or a health panel is open).
  let watching: vscode.Disposable | undefined;
  const follow = () => {
    if (view.visible && !watching)
      watching = vscode.Disposable.from(ctx.health.watch(view), ctx.metrics.watch(view));
    if (!view.visible && watching) {
      watching.dispose();
      watching = undefined;
    }
  };
  ctx.push(
    provider,
    view,
    ctx.inventory.onDidChange(update),
    ctx.health.onDidChange(update),
    ctx.k3s.onDidChange(update),
    ctx.backups.onDidChange(update),
    ctx.certsChecks.onDidChange(update),
    // A finished keyspace scan (not its progress) puts the top consumer in the tooltip.
    ctx.keyspace.onDidChange((c) => {
      if (!ctx.keyspace.state(c).running) update();
    }),
    // Every scrape changes the panel's figures; the tree redraws only when a member's badge
    // (its broken rules) changes. Health refreshes redraw it anyway, with the latest words.
    ctx.metrics.onDidChange(() => {
      const now = metricsBadges(ctx.metrics.states());
      if (now !== badges) update();
    }),
    view.onDidChangeVisibility(follow),
    // A provisioning task that ended well (applied, or "nothing to change") means etcd is there.
    vscode.tasks.onDidEndTaskProcess((e) => {
      const def = e.execution.task.definition as Partial<K3sEtcdTaskDefinition>;
      if (def.type !== TASK_TYPE || def.operation !== 'provision-etcd' || e.exitCode !== 0) return;
      const result = ctx.inventory.current();
      const cluster =
        result?.status === 'ok' && def.cluster
          ? clusterByName(result.inventory, def.cluster)
          : undefined;
      if (cluster) void remember(cluster, 'provisioned').then((changed) => changed && update());
    }),
    ctx.trust.onDidGrant(update),
    {
      dispose: () => watching?.dispose(),
    },
  );
  update();
  follow();
  return provider;
}
