/**
 * "etcd health" webview: one panel per cluster with the Health, Status and Members tables
 * (etcdctl's columns). While it is open the health service refreshes on its interval; the panel
 * restores its last state when shown again. Strict CSP with a nonce; resources only from
 * dist/webview and media; typed messages from src/shared/protocol.
 */
import { backupsNode } from '../../core/tree/backups';
import * as vscode from 'vscode';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  HEALTH_HEADER,
  MEMBERS_HEADER,
  STATUS_HEADER,
  healthRows,
  memberRows,
  statusRows,
} from '../../core/etcd/tables';
import { formatPerfReport, compareReports, readReport } from '../../core/perf/reports';
import { markdownTable } from '../../core/format/table';
import { clientUrl, clusterByName, etcdHosts } from '../../core/inventory/select';
import { quotasFromMetrics, settingsInEffect } from '../../core/etcd/effective';
import {
  looksUnprovisioned,
  unitAbsentEverywhere,
  unitLookWords,
} from '../../core/tree/provisioned';
import type { TreeNode } from '../../core/tree/model';
import { COMMANDS } from '../../shared/commands';
import {
  HealthCopyCommand,
  HealthGenerateCertsCommand,
  HealthOpenCliCommand,
  HealthPreviewPlanCommand,
  HealthShowBackupsCommand,
  HealthProvisionCommand,
  HealthReadSettingsCommand,
  HealthReadyCommand,
  HealthRefreshCommand,
  HealthStateNotification,
  KeyspaceStateNotification,
  MetricsMaintainCommand,
  MetricsRefreshCommand,
  MetricsStateNotification,
  PerfCancelCommand,
  PerfCompareCommand,
  PerfExportCommand,
  PerfReclaimCommand,
  PerfRunCommand,
  PerfStateNotification,
  type HealthPanelState,
  type HealthSection,
} from '../../shared/protocol';
import type { ExtensionCtx } from '../ctx';
import { showError } from '../errors';
import { healthPanelNeedsTrust } from '../untrustedCommands';
import { quietSshContext } from '../sshPrompts';
import { HostSettingsReads } from './hostSettings';
import { keyspaceTabState, onKeyspaceMessage } from './keyspaceTab';
import { createPanel } from './panel';

const panels = new Map<string, HealthPanel>();

export class HealthPanel implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];
  private readonly panel: vscode.WebviewPanel;
  /** The settings last posted, so a metrics scrape that changes none of them posts nothing. */
  private postedSettings = '';
  /** What etcd runs with on the hosts, as last read (Read Settings from Hosts). */
  private readonly fromHosts: HostSettingsReads;

  static show(ctx: ExtensionCtx, cluster: string): HealthPanel {
    const existing = panels.get(cluster);
    if (existing) {
      existing.panel.reveal();
      return existing;
    }
    const created = new HealthPanel(ctx, cluster);
    panels.set(cluster, created);
    return created;
  }

  private constructor(
    private readonly ctx: ExtensionCtx,
    private readonly cluster: string,
  ) {
    this.panel = createPanel(ctx, 'k3sEtcd.health', `etcd health: ${cluster}`, 'health');
    this.fromHosts = new HostSettingsReads(ctx);
    this.disposables.push(
      ctx.health.watch(this),
      ctx.metrics.watch(this),
      this.panel.onDidDispose(() => this.dispose()),
      this.panel.webview.onDidReceiveMessage((msg: unknown) => void this.onMessage(msg)),
      ctx.health.onDidChange((name) => name === this.cluster && this.post(false)),
      ctx.perf.onDidChange((name) => name === this.cluster && void this.postPerf()),
      ctx.keyspace.onDidChange((name) => name === this.cluster && this.postKeyspace()),
      ctx.backups.onDidChange((name) => name === this.cluster && this.post(false)),
      ctx.metrics.onDidChange((name) => {
        if (name !== this.cluster) return;
        this.postMetrics();
        // The quota each member runs with comes with the scrape: the Status tab follows it.
        const settings = JSON.stringify(this.state(false).settings ?? null);
        if (settings !== this.postedSettings) this.post(false);
      }),
    );
  }

  private clusterObject() {
    const r = this.ctx.inventory.current();
    return r?.status === 'ok' ? clusterByName(r.inventory, this.cluster) : undefined;
  }

  private state(refreshing: boolean): HealthPanelState {
    const c = this.clusterObject();
    const names: Record<string, string> = {};
    if (c) for (const h of etcdHosts(c)) names[clientUrl(c, h)] = h.memberName;
    const h = this.ctx.health.get(this.cluster);
    // The tree's decision, on the same history: "not provisioned yet" is neutral, not down.
    const history = c ? this.ctx.health.history.of(c) : undefined;
    const notProvisioned = !!(c && h?.snapshot && looksUnprovisioned(h.snapshot, history));
    // Whether the hosts confirm it (none has etcd's unit), or what is not known, in words.
    const checked = c?.datastore === 'external-etcd';
    const unitLook = notProvisioned
      ? {
          confirmed: checked && unitAbsentEverywhere(history),
          words: checked
            ? unitLookWords(history)
            : 'If etcd was provisioned from elsewhere, every member is down.',
        }
      : undefined;
    const settings =
      c && h?.snapshot && !notProvisioned
        ? {
            ...settingsInEffect(c, quotasFromMetrics(this.ctx.metrics.get(this.cluster)?.metrics)),
            ...this.fromHosts.state(),
          }
        : undefined;
    const node = c ? backupsNode(c, this.ctx.backups.states().get(c.name)) : undefined;
    return {
      cluster: this.cluster,
      refreshing,
      names,
      ...(node
        ? {
            backups: {
              state: node.state,
              words: node.description ?? '',
              problems: node.problems,
            },
          }
        : {}),
      ...(notProvisioned ? { notProvisioned } : {}),
      ...(unitLook ? { unitLook } : {}),
      ...(settings ? { settings } : {}),
      ...(h?.snapshot ? { snapshot: h.snapshot } : {}),
      ...(h?.error
        ? { error: h.error }
        : !c
          ? {
              error: {
                code: 'unknown-cluster',
                message: `Cluster ${this.cluster} is not in the inventory.`,
              },
            }
          : {}),
    };
  }

  private post(refreshing: boolean): void {
    const state = this.state(refreshing);
    this.postedSettings = JSON.stringify(state.settings ?? null);
    void this.panel.webview.postMessage(HealthStateNotification.create(state));
  }

  /** The panel's cluster as the tree node the cluster commands take. */
  private clusterNode(): TreeNode | undefined {
    const c = this.clusterObject();
    return c
      ? {
          kind: 'cluster',
          cluster: c.name,
          datastore: c.datastore,
          line: c.line,
          id: '',
          label: c.name,
        }
      : undefined;
  }

  private postMetrics(): void {
    const s = this.ctx.metrics.get(this.cluster);
    void this.panel.webview.postMessage(
      MetricsStateNotification.create({
        ...this.ctx.metrics.config(),
        ...(s?.metrics ? { metrics: s.metrics } : {}),
        ...(s?.error ? { error: s.error } : {}),
      }),
    );
  }

  private postKeyspace(): void {
    void this.panel.webview.postMessage(
      KeyspaceStateNotification.create(keyspaceTabState(this.ctx, this.cluster)),
    );
  }

  private async postPerf(): Promise<void> {
    void this.panel.webview.postMessage(
      PerfStateNotification.create(await this.ctx.perf.state(this.cluster)),
    );
  }

  private async openMarkdown(name: string, text: string): Promise<void> {
    const dir = this.ctx.perf.reportsDir();
    if (!dir) throw new Error('Open a folder first: reports live in the workspace.');
    const file = join(dir, name);
    await writeFile(file, text);
    await vscode.commands.executeCommand('markdown.showPreview', vscode.Uri.file(file));
  }

  private async onPerfMessage(msg: unknown): Promise<boolean> {
    const dir = this.ctx.perf.reportsDir();
    if (PerfRunCommand.is(msg)) {
      const c = this.clusterObject();
      if (c) await this.ctx.perf.start(c, msg.params.load, msg.params.durationSec);
    } else if (PerfCancelCommand.is(msg)) {
      this.ctx.perf.cancel(this.cluster);
    } else if (PerfReclaimCommand.is(msg)) {
      await this.ctx.perf.reclaim(this.cluster);
    } else if (PerfExportCommand.is(msg) && dir) {
      const r = await readReport(dir, msg.params.file);
      await this.openMarkdown(
        msg.params.file.replace(/\.json$/, '.md'),
        formatPerfReport(r.result),
      );
    } else if (PerfCompareCommand.is(msg) && dir) {
      const [a, b] = await Promise.all([
        readReport(dir, msg.params.a),
        readReport(dir, msg.params.b),
      ]);
      await this.openMarkdown(
        `compare-${msg.params.a.replace(/\.json$/, '')}-vs-${msg.params.b.replace(/\.json$/, '')}.md`,
        compareReports(a, b),
      );
    } else {
      return false;
    }
    return true;
  }

  private async refresh(): Promise<void> {
    const c = this.clusterObject();
    if (!c) return this.post(false);
    this.post(true);
    await this.ctx.health.refresh(c);
    await this.lookForUnit();
  }

  /** The person opened the panel or pressed Refresh: nothing answering has the hosts asked. */
  private async lookForUnit(): Promise<void> {
    const c = this.clusterObject();
    if (c) await this.ctx.health.lookForUnit(c, () => quietSshContext(this.ctx));
  }

  private async onMessage(msg: unknown): Promise<void> {
    // Trust is asked where each message acts, not only where the panel was opened.
    const what = healthPanelNeedsTrust(msg);
    if (what) {
      try {
        this.ctx.trust.require(what);
      } catch (err) {
        await showError(this.ctx.log, what, err);
        return;
      }
    }
    try {
      if (await this.onPerfMessage(msg)) return;
    } catch (err) {
      await showError(this.ctx.log, 'Performance check', err);
      return;
    }
    try {
      if (await onKeyspaceMessage(this.ctx, this.clusterObject(), this.cluster, msg)) return;
    } catch (err) {
      await showError(this.ctx.log, 'Keyspace', err);
      return;
    }
    if (HealthReadyCommand.is(msg)) {
      this.post(false);
      void this.postPerf();
      this.postMetrics();
      this.postKeyspace();
      if (!this.ctx.health.get(this.cluster)) await this.refresh();
      else await this.lookForUnit();
    } else if (HealthRefreshCommand.is(msg)) {
      await this.refresh();
    } else if (MetricsRefreshCommand.is(msg)) {
      const c = this.clusterObject();
      if (c) await this.ctx.metrics.refresh(c);
    } else if (MetricsMaintainCommand.is(msg)) {
      const c = this.clusterObject();
      if (c)
        await vscode.commands.executeCommand(COMMANDS.maintain, {
          kind: 'cluster',
          cluster: c.name,
          datastore: c.datastore,
          line: c.line,
          id: '',
          label: c.name,
        });
    } else if (HealthCopyCommand.is(msg)) {
      await vscode.env.clipboard.writeText(this.markdown(msg.params.section));
      void vscode.window.setStatusBarMessage(
        `Copied the ${msg.params.section} table of ${this.cluster} as Markdown`,
        3000,
      );
    } else if (HealthOpenCliCommand.is(msg)) {
      this.openCli(msg.params.section);
    } else if (HealthGenerateCertsCommand.is(msg)) {
      const node = this.clusterNode();
      if (node) await vscode.commands.executeCommand(COMMANDS.certsGenerate, node);
      await this.refresh();
    } else if (HealthReadSettingsCommand.is(msg)) {
      await this.fromHosts.read(this.clusterObject(), () => this.post(false));
    } else if (HealthShowBackupsCommand.is(msg)) {
      const node = this.clusterNode();
      if (node) await vscode.commands.executeCommand(COMMANDS.backupStatus, node);
    } else if (HealthProvisionCommand.is(msg) || HealthPreviewPlanCommand.is(msg)) {
      const node = this.clusterNode();
      const command = HealthProvisionCommand.is(msg)
        ? COMMANDS.provisionEtcd
        : COMMANDS.provisionPreview;
      if (node) await vscode.commands.executeCommand(command, node);
    }
  }

  private markdown(section: HealthSection): string {
    const s = this.ctx.health.get(this.cluster)?.snapshot;
    if (!s) return '';
    if (section === 'health') return markdownTable(HEALTH_HEADER, healthRows(s.health));
    if (section === 'status') return markdownTable(STATUS_HEADER, statusRows(s.status));
    return markdownTable(MEMBERS_HEADER, memberRows(s.members));
  }

  /** The same data in the CLI form, in a terminal. */
  private openCli(section: HealthSection): void {
    const cli = vscode.Uri.joinPath(this.ctx.vscodeContext.extensionUri, 'dist', 'cli.js').fsPath;
    const inventory = this.ctx.inventory.file();
    const terminal = vscode.window.createTerminal({
      name: `k3s-etcd ${section}`,
      ...(inventory ? { cwd: dirname(inventory) } : {}),
    });
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    terminal.sendText(
      `node ${quote(cli)} ${section} --cluster ${quote(this.cluster)}${inventory ? ` --inventory ${quote(inventory)}` : ''}`,
    );
    terminal.show();
  }

  dispose(): void {
    panels.delete(this.cluster);
    for (const d of this.disposables) d.dispose();
    this.panel.dispose();
  }
}
