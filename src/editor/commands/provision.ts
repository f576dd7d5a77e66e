/**
 * Provisioning commands: run the task (cluster or host), preview the plan in a read-only
 * document (a dry run that only reads the hosts), add and remove etcd members.
 */
import * as vscode from 'vscode';
import { CancelledError } from '../../core/errors';
import type { Cluster, Host } from '../../core/inventory/types';
import { etcdHosts, peerUrl, selectHosts } from '../../core/inventory/select';
import { addMember, removeMember } from '../../core/provision/members';
import { provisionEtcd } from '../../core/provision/provision';
import { summarizeRun, type HostRun } from '../../core/plan/runner';
import { diagnosePeerUrl, fixPeerUrl } from '../../core/repair/peerUrl';
import { isIpOrHostname } from '../../core/inventory/addressFormat';
import type { TreeNode } from '../../core/tree/model';
import type { ExtensionCtx } from '../ctx';
import { withCancellableProgress } from '../progress';
import { runProvisionTask } from '../provisionTasks';
import { editorSshContext } from '../sshPrompts';
import { resolveCluster } from './cluster';

export const PLAN_SCHEME = 'k3s-etcd-plan';

/** Read-only documents holding plan previews. */
export class PlanDocuments implements vscode.TextDocumentContentProvider {
  private readonly docs = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  set(uri: vscode.Uri, text: string): void {
    this.docs.set(uri.toString(), text);
    this.changed.fire(uri);
  }
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.docs.get(uri.toString()) ?? '';
  }
}

function hostOf(cluster: Cluster, node?: TreeNode): Host | undefined {
  if (!node || (node.kind !== 'host' && node.kind !== 'role')) return undefined;
  return cluster.hosts.find((h) => h.name === node.host);
}

async function pickEtcdHost(
  cluster: Cluster,
  title: string,
  filter: (h: Host) => boolean = () => true,
): Promise<Host> {
  const hosts = etcdHosts(cluster).filter(filter);
  const picked = await vscode.window.showQuickPick(
    hosts.map((h) => ({ label: h.name, description: h.address, host: h })),
    { title },
  );
  if (!picked) throw new CancelledError(title);
  return picked.host;
}

export function provisionEtcdCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    await runProvisionTask(ctx, cluster.name, hostOf(cluster, node)?.name);
  };
}

const STATUS_WORD: Record<string, string> = {
  'would-change': 'will change',
  unchanged: 'unchanged',
  ok: 'check passes',
  failed: 'FAILS',
  pending: 'not reached',
  changed: 'changed',
};

export function previewText(
  title: string,
  runs: HostRun[],
  apply = 'K3s etcd: Provision etcd',
): string {
  const out = [
    `# ${title}`,
    '',
    `A dry run made ${new Date().toISOString()}: each host was only read. Run "${apply}" to apply.`,
    '',
    ...runs.map((r) => `- ${summarizeRun(r)}`),
    '',
  ];
  for (const r of runs) {
    out.push(`## ${summarizeRun(r)}`, '');
    if (r.error && r.steps.length === 0) out.push(`> ${r.error.message}`, '');
    if (r.steps.length > 0) {
      out.push('| # | Step | Result |', '|---|---|---|');
      for (const s of r.steps)
        out.push(
          `| ${s.n} | ${s.title.replace(/\|/g, '\\|')} | ${STATUS_WORD[s.status] ?? s.status}${s.detail ? `: ${s.detail.replace(/\|/g, '\\|')}` : ''} |`,
        );
      out.push('');
    }
    const script = r.script;
    if (script) {
      out.push(
        `<details><summary>The script that runs on ${r.host} (as root; private keys and binaries are uploaded beside it, not shown)</summary>`,
        '',
        '```sh',
        script.trimEnd(),
        '```',
        '',
        '</details>',
        '',
      );
    }
  }
  return out.join('\n');
}

export function previewPlanCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host = hostOf(cluster, node);
    const hosts = selectHosts(cluster, host ? [host.name] : undefined);
    const ssh = await editorSshContext(ctx);
    const result = await withCancellableProgress(
      `Reading ${hosts.length} host(s) of ${cluster.name}`,
      (report, signal) =>
        provisionEtcd(cluster, {
          dryRun: true,
          ssh,
          hosts: hosts.map((h) => h.name),
          signal,
          onStep: (h, s) => report(`${h}: ${s.title}`),
        }),
    );
    const uri = vscode.Uri.from({
      scheme: PLAN_SCHEME,
      path: `/${cluster.name}${host ? `-${host.name}` : ''}-etcd-plan.md`,
    });
    docs.set(uri, previewText(`Provisioning plan: etcd for cluster ${cluster.name}`, result.runs));
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: false });
  };
}

export function addMemberCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Add which host as an etcd member?'));
    const choice = await vscode.window.showWarningMessage(
      `Add ${host.memberName} to etcd cluster ${cluster.name}?`,
      {
        modal: true,
        detail: `Runs "member add" with the peer URL ${peerUrl(cluster, host)} through a healthy member, then provisions ${host.name} joining as an existing-cluster member. The cluster's quorum grows with it: start the host right away.`,
      },
      'Add Member',
    );
    if (choice !== 'Add Member') return;
    const ssh = await editorSshContext(ctx);
    const result = await withCancellableProgress(
      `Adding ${host.memberName} to ${cluster.name}`,
      (report, signal) =>
        addMember(cluster, host.name, {
          dryRun: false,
          ssh,
          signal,
          onLine: (_h, l) => ctx.log.info(`[${host.name}] ${l}`),
          onStep: (_h, s) => report(s.title),
        }),
    );
    void ctx.health.refreshAll();
    const run = result.runs[0];
    if (!run || run.status === 'failed' || result.healthy === false) {
      throw new Error(
        run?.error?.message ??
          `member ${result.memberId} added, but it is not healthy: ${result.healthSummary ?? ''}`,
      );
    }
    void vscode.window.showInformationMessage(
      `${host.memberName} (${result.memberId}) joined ${cluster.name}: ${result.healthSummary ?? 'healthy'}.`,
    );
  };
}

export function removeMemberCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Remove which etcd member?'));
    const choice = await vscode.window.showWarningMessage(
      `Remove etcd member ${host.memberName} from ${cluster.name}?`,
      {
        modal: true,
        detail: `Runs "member remove" through another member (refused if quorum would be lost), then stops and disables etcd on ${host.name}. Its data dir ${cluster.etcd.dataDir} is moved aside and kept, unless you choose to delete it.`,
      },
      'Remove, Keep Data',
      'Remove and Delete Data…',
    );
    if (!choice) return;
    let purge = false;
    if (choice === 'Remove and Delete Data…') {
      const sure = await vscode.window.showWarningMessage(
        `Delete ${cluster.etcd.dataDir} on ${host.name} for good?`,
        {
          modal: true,
          detail: 'This cannot be undone. The cluster keeps its data on the other members.',
        },
        'Delete Data',
      );
      if (sure !== 'Delete Data') return;
      purge = true;
    }
    const ssh = await editorSshContext(ctx);
    const r = await withCancellableProgress(
      `Removing ${host.memberName} from ${cluster.name}`,
      (_report, signal) =>
        removeMember(cluster, host.name, {
          dryRun: false,
          purgeData: purge,
          ssh,
          signal,
          onLine: (_h, l) => ctx.log.info(`[${host.name}] ${l}`),
        }),
    );
    void ctx.health.refreshAll();
    void vscode.window.showInformationMessage(
      `${host.memberName}${r.memberId ? ` (${r.memberId})` : ''} removed from ${cluster.name}. ${r.lines.at(-1) ?? ''}`,
    );
  };
}

export function fixPeerUrlCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const host =
      hostOf(cluster, node) ?? (await pickEtcdHost(cluster, 'Fix the peer URL of which member?'));
    const given = await vscode.window.showInputBox({
      title: `Fix peer URL of ${host.memberName}`,
      prompt: `The new address of ${host.name} (now ${host.address} in k3s-etcd.yaml). Leave empty to read it from the host over SSH.`,
      placeHolder: 'for example 10.10.3.120',
      ignoreFocusOut: true,
      validateInput: (v) =>
        v === '' || isIpOrHostname(v.trim())
          ? undefined
          : 'An IPv4 or IPv6 address, or a host name',
    });
    if (given === undefined) return;
    const ssh = await editorSshContext(ctx);
    const d = await withCancellableProgress(`Checking ${host.memberName}`, (_r, signal) =>
      diagnosePeerUrl(cluster, host.name, {
        ssh,
        signal,
        ...(given.trim() ? { newAddress: given.trim() } : {}),
      }),
    );
    ctx.log.info(`fix peer URL ${host.memberName}: ${JSON.stringify(d)}`);
    if (d.stale.length === 0) {
      void vscode.window.showInformationMessage(
        `${host.memberName} is up to date at ${d.newAddress}: nothing to fix.`,
      );
      return;
    }
    if (!d.quorum.ok)
      throw new Error(
        `Repairing ${host.memberName} is refused: ${d.quorum.why}. Bring the other members back first.`,
      );
    const choice = await vscode.window.showWarningMessage(
      `Update member ${d.memberId ?? d.member} to ${d.newPeerUrl}?`,
      {
        modal: true,
        detail: [
          'Stale now:',
          ...d.stale.map((s) => `• ${s.what}: ${s.now} → ${s.want}`),
          '',
          'The repair:',
          ...d.steps.map((s, i) => `${i + 1}. ${s}`),
        ].join('\n'),
      },
      'Fix Peer URL',
    );
    if (choice !== 'Fix Peer URL') return;
    const result = await withCancellableProgress(`Repairing ${host.memberName}`, (report, signal) =>
      fixPeerUrl(cluster, d, {
        ssh,
        signal,
        inventoryFile: (ctx.inventory.current() as { file: string }).file,
        onLine: (h, l) => {
          ctx.log.info(`[${h}] ${l}`);
          if (/^\d\. /.test(l)) report(l);
        },
      }),
    );
    void ctx.health.refreshAll();
    if (result.next && d.datastore === 'k3s-embedded-etcd') {
      void vscode.window.showInformationMessage(
        `${host.memberName} now at ${d.newPeerUrl} in the member list. ${result.next}`,
      );
      return;
    }
    if (!result.healthy)
      throw new Error(`The repair ran but the member is not healthy yet: ${result.summary}`);
    void vscode.window.showInformationMessage(
      `${host.memberName} now at ${d.newPeerUrl}: ${result.summary}.${result.next ? ` ${result.next}` : ''}`,
    );
  };
}
