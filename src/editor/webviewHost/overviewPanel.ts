/**
 * "Cluster overview" webview: one panel per cluster, reused when asked again. Strict CSP with a
 * nonce, resources only from dist/webview and media, typed messages from src/shared/protocol.
 */
import * as vscode from 'vscode';
import { formatProblem } from '../../core/inventory/parse';
import { clientUrl, clusterByName, peerUrl, sshTarget } from '../../core/inventory/select';
import {
  OpenInventoryCommand,
  ReadyCommand,
  StateNotification,
  type OverviewState,
} from '../../shared/protocol';
import { COMMANDS } from '../../shared/commands';
import type { ExtensionCtx } from '../ctx';
import { createPanel } from './panel';

const panels = new Map<string, OverviewPanel>();

export class OverviewPanel implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private lastState: OverviewState | undefined;

  static show(ctx: ExtensionCtx, cluster: string): OverviewPanel {
    const existing = panels.get(cluster);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const created = new OverviewPanel(ctx, cluster);
    panels.set(cluster, created);
    return created;
  }

  private readonly panel: vscode.WebviewPanel;

  private constructor(
    private readonly ctx: ExtensionCtx,
    private readonly cluster: string,
  ) {
    this.panel = createPanel(ctx, 'k3sEtcd.overview', `etcd: ${cluster}`, 'overview');
    this.disposables.push(
      this.panel.onDidDispose(() => this.dispose()),
      this.panel.webview.onDidReceiveMessage((msg: unknown) => this.onMessage(msg)),
      ctx.inventory.onDidChange(() => this.post()),
    );
  }

  private onMessage(msg: unknown): void {
    if (ReadyCommand.is(msg)) {
      this.post();
    } else if (OpenInventoryCommand.is(msg)) {
      const result = this.ctx.inventory.current();
      const host =
        result?.status === 'ok'
          ? result.inventory.clusters
              .find((c) => c.name === this.cluster)
              ?.hosts.find((h) => h.name === msg.params.host)
          : undefined;
      void vscode.commands.executeCommand(
        COMMANDS.inventoryOpen,
        host ? { kind: 'host', line: host.line } : undefined,
      );
    }
  }

  private state(): OverviewState {
    const result = this.ctx.inventory.current();
    const base: OverviewState = {
      cluster: this.cluster,
      datastore: '',
      etcdVersion: '',
      pkiDir: '',
      hosts: [],
      problems: [],
    };
    if (!result || result.status !== 'ok') {
      return {
        ...(this.lastState ?? base),
        problems: result?.problems.map((p) => formatProblem(p)) ?? ['The inventory is not loaded.'],
      };
    }
    const c = clusterByName(result.inventory, this.cluster);
    if (!c)
      return { ...base, problems: [`Cluster "${this.cluster}" is no longer in the inventory.`] };
    return {
      cluster: c.name,
      datastore: c.datastore,
      etcdVersion: c.etcd.version,
      pkiDir: vscode.workspace.asRelativePath(c.pki.dir),
      problems: result.problems.map((p) => formatProblem(p)),
      hosts: c.hosts.map((h) => ({
        name: h.name,
        sshTarget: sshTarget(h),
        roles: h.roles,
        ...(h.roles.includes('etcd') ? { clientUrl: clientUrl(c, h), peerUrl: peerUrl(c, h) } : {}),
      })),
    };
  }

  private post(): void {
    const state = this.state();
    if (state.hosts.length) this.lastState = state;
    void this.panel.webview.postMessage(StateNotification.create(state));
  }

  dispose(): void {
    panels.delete(this.cluster);
    for (const d of this.disposables) d.dispose();
    this.panel.dispose();
  }
}
