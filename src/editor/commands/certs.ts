/**
 * Certificate commands: generate the set, inspect, import a CA, re-issue a member, check what the
 * hosts hold and serve (a Markdown report; the tree keeps the result). The work is
 * the core's (src/core/pki); here are the questions (modal confirmation naming the files,
 * passphrase without echo), progress with cancel, and the .gitignore offer. Only file names are
 * logged, never key material.
 */
import * as vscode from 'vscode';
import { dirname, join, relative } from 'node:path';
import { CancelledError } from '../../core/errors';
import { isIpOrHostname } from '../../core/inventory/addressFormat';
import type { Cluster } from '../../core/inventory/types';
import { clusterByName, etcdHosts } from '../../core/inventory/select';
import { addIgnore, isIgnored, keyIgnorePattern } from '../../core/pki/gitignore';
import { writtenText } from '../../core/pki/store';
import {
  formatInspection,
  importCa,
  inspectCertificate,
  planCertificateSet,
  planReissue,
  writePlan,
  CA_FILES,
  type PkiOptions,
  type SetPlan,
  type WriteResult,
} from '../../core/pki/set';
import type { TreeNode } from '../../core/tree/model';
import { Config } from '../config';
import type { ExtensionCtx } from '../ctx';
import { withCancellableProgress } from '../progress';
import { resolveCluster } from '../pick';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { editorSshContext } from '../sshPrompts';
import { checkMarkdown } from '../../core/pkiHost/render';

export const CERT_SCHEME = 'k3s-etcd-cert';

/** Read-only documents for "Inspect Certificate". */
export class CertificateDocuments implements vscode.TextDocumentContentProvider {
  private readonly texts = new Map<string, string>();
  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }
  async show(file: string, text: string): Promise<void> {
    const uri = vscode.Uri.from({ scheme: CERT_SCHEME, path: `${file}.txt` });
    this.texts.set(uri.toString(), text);
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: true });
  }
}

export function editorPkiOptions(ctx: ExtensionCtx): PkiOptions {
  return {
    defaultAlgorithm: Config.pkiAlgorithm(),
    askPassphrase: async (label, retry) =>
      vscode.window.showInputBox({
        title: retry ? `Wrong passphrase for ${label}: try again` : `Passphrase for ${label}`,
        prompt: 'The CA key is encrypted. The passphrase is used once and not stored.',
        password: true,
        ignoreFocusOut: true,
      }),
    confirmReplace: async (files, reasons) => {
      const shown = files.map((f) => vscode.workspace.asRelativePath(f));
      ctx.log.info(`Asking before replacing: ${shown.join(', ')}`);
      const choice = await vscode.window.showWarningMessage(
        `Replace ${files.length} existing file(s)?`,
        { modal: true, detail: `${shown.join('\n')}\n\nWhy:\n${reasons.join('\n')}` },
        'Replace',
      );
      return choice === 'Replace';
    },
  };
}

async function offerGitignore(ctx: ExtensionCtx, cluster: Cluster): Promise<void> {
  const root = ctx.inventory.file() ? dirname(ctx.inventory.file() ?? '') : undefined;
  const pattern = root ? keyIgnorePattern(root, cluster.pki.dir) : undefined;
  if (!root || !pattern || (await isIgnored(root, pattern))) return;
  const choice = await vscode.window.showInformationMessage(
    `Private keys in ${vscode.workspace.asRelativePath(cluster.pki.dir)} are not ignored by git. Add "${pattern}" to .gitignore?`,
    'Add to .gitignore',
    'Not Now',
  );
  if (choice === 'Add to .gitignore') {
    await addIgnore(root, pattern);
    ctx.log.info(`Added ${pattern} to ${join(root, '.gitignore')}`);
  }
}

async function runPlan(
  ctx: ExtensionCtx,
  cluster: Cluster,
  title: string,
  makePlan: (opts: PkiOptions) => Promise<SetPlan>,
): Promise<WriteResult> {
  const opts = editorPkiOptions(ctx);
  const result = await withCancellableProgress(title, async (report, signal) => {
    report('checking what exists');
    const plan = await makePlan({ ...opts, signal });
    const issuing = plan.leaves.filter((l) => l.action !== 'keep').length;
    report(issuing ? `issuing ${issuing} certificate(s)` : 'everything is current');
    return writePlan(cluster, plan, { ...opts, signal });
  });
  ctx.log.info(
    `${title}: wrote ${writtenText(result.written)} in ${cluster.pki.dir}: ${result.written.join(', ') || '(none)'}`,
  );
  for (const w of result.plan.warnings) {
    ctx.log.warn(w);
    void vscode.window.showWarningMessage(w);
  }
  await ctx.inventory.reload();
  return result;
}

export function generateCertificates(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const result = await runPlan(
      ctx,
      cluster,
      `Generating certificates for ${cluster.name}`,
      (opts) => planCertificateSet(cluster, opts),
    );
    const where = vscode.workspace.asRelativePath(cluster.pki.dir);
    void vscode.window.showInformationMessage(
      result.written.length
        ? `Certificates for ${cluster.name}: wrote ${writtenText(result.written)} in ${where} (keys 0600).`
        : `Certificates for ${cluster.name} are current; nothing was written.`,
    );
    // Offered, not awaited: the command is done when the files are written.
    void offerGitignore(ctx, cluster).catch((err: unknown) =>
      ctx.log.warn(`.gitignore offer failed: ${String(err)}`),
    );
  };
}

async function pickMember(
  ctx: ExtensionCtx,
  node?: TreeNode,
): Promise<{ cluster: Cluster; member: string }> {
  const cluster = await resolveCluster(ctx, node);
  if (node?.kind === 'role' && node.member) return { cluster, member: node.member.name };
  if (node?.kind === 'certificate' && node.member) return { cluster, member: node.member };
  const hosts = etcdHosts(cluster);
  if (hosts.length === 1 && hosts[0]) return { cluster, member: hosts[0].memberName };
  const picked = await vscode.window.showQuickPick(
    hosts.map((h) => ({ label: h.memberName, description: h.address })),
    { title: `Which member of ${cluster.name}?` },
  );
  if (!picked) throw new CancelledError('Member selection');
  return { cluster, member: picked.label };
}

export function reissueMember(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const { cluster, member } = await pickMember(ctx, node);
    const host = etcdHosts(cluster).find((h) => h.memberName === member);
    const input = await vscode.window.showInputBox({
      title: `Re-issue ${member}'s server and peer certificates`,
      prompt: `SANs from the inventory: ${host ? [host.address, host.name, ...host.sans].join(', ') : ''}, 127.0.0.1, localhost. Add more, comma-separated (optional):`,
      placeHolder: 'e.g. 10.10.3.200, etcd-1.site.lan',
      ignoreFocusOut: true,
      validateInput: (v) => {
        const bad = v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s && !isIpOrHostname(s));
        return bad.length ? `not an IP address or hostname: ${bad.join(', ')}` : undefined;
      },
    });
    if (input === undefined) throw new CancelledError('Re-issue');
    const extra = input
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const result = await runPlan(ctx, cluster, `Re-issuing ${member}'s certificates`, (opts) =>
      planReissue(cluster, member, extra, opts),
    );
    void vscode.window.showInformationMessage(
      `Re-issued ${member}'s server and peer certificates under the same CA: ${writtenText(result.written)}.`,
    );
  };
}

export function importCaCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const pick = async (title: string) => {
      const uris = await vscode.window.showOpenDialog({
        title,
        canSelectMany: false,
        filters: { 'PEM files': ['pem', 'crt', 'key'], 'All files': ['*'] },
      });
      if (!uris?.[0]) throw new CancelledError('Import CA');
      return uris[0].fsPath;
    };
    const cert = await pick(`CA certificate for ${cluster.name}`);
    const key = await pick(`CA private key for ${cluster.name}`);
    const result = await importCa(cluster, cert, key, editorPkiOptions(ctx));
    ctx.log.info(`Imported CA ${cert} into ${cluster.pki.dir}: ${result.written.join(', ')}`);
    await ctx.inventory.reload();
    const choice = await vscode.window.showInformationMessage(
      `Imported the CA into ${vscode.workspace.asRelativePath(cluster.pki.dir)}. Generate the certificate set with it now?`,
      'Generate',
    );
    if (choice === 'Generate')
      await generateCertificates(ctx)({
        kind: 'cluster',
        cluster: cluster.name,
        datastore: cluster.datastore,
        line: cluster.line,
        id: '',
        label: cluster.name,
      });
  };
}

export function inspectCertificateCommand(ctx: ExtensionCtx, docs: CertificateDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    let file: string;
    let keyFile: string | undefined;
    let caFile: string | undefined;
    if (node?.kind === 'certificate') {
      file = node.file;
      keyFile = node.keyFile;
      const result = ctx.inventory.current();
      const cluster =
        result?.status === 'ok' ? clusterByName(result.inventory, node.cluster) : undefined;
      caFile = cluster ? join(cluster.pki.dir, CA_FILES.cert) : undefined;
    } else {
      const cluster = await resolveCluster(ctx, node);
      const index = ctx.inventory.pkiIndexes().get(cluster.name);
      const items = (index?.entries ?? []).map((e) => ({
        label: e.name,
        description: e.path,
        detail: `${e.subject} · until ${e.notAfter.slice(0, 10)}`,
        path: e.path,
        keyPath: e.keyPath,
      }));
      const browse = {
        label: '$(folder-opened) Browse…',
        description: 'any certificate file',
        detail: '',
        path: '',
        keyPath: '',
      };
      const picked = await vscode.window.showQuickPick([...items, browse], {
        title: `Inspect a certificate of ${cluster.name}`,
      });
      if (!picked) throw new CancelledError('Inspect');
      if (picked === browse) {
        const uris = await vscode.window.showOpenDialog({
          canSelectMany: false,
          filters: { Certificates: ['pem', 'crt'] },
        });
        if (!uris?.[0]) throw new CancelledError('Inspect');
        file = uris[0].fsPath;
      } else {
        file = join(cluster.pki.dir, picked.path);
        keyFile = join(cluster.pki.dir, picked.keyPath);
      }
      caFile = join(cluster.pki.dir, CA_FILES.cert);
    }
    const inspection = await inspectCertificate(file, {
      ...(caFile ? { caFile } : {}),
      ...(keyFile ? { keyFile } : {}),
    });
    await docs.show(
      relative(dirname(ctx.inventory.file() ?? file), file),
      formatInspection(inspection),
    );
  };
}

/**
 * Check Deployed Certificates: every member's and K3s server's files over SSH and what each
 * member serves, against the workspace; the report opens rendered, the tree marks the hosts.
 */
export function checkDeployedCertificatesCommand(ctx: ExtensionCtx, docs: PlanDocuments) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const ssh = await editorSshContext(ctx);
    const result = await withCancellableProgress(
      `Checking the certificates on the hosts of ${cluster.name}`,
      (_report, signal) =>
        ctx.certsChecks.check(cluster, ssh, Config.certificatesWarnDays(), signal),
    );
    await showPlan(docs, planUri(`certificates-${cluster.name}.md`), checkMarkdown(result));
    const n = result.findings.length;
    if (n === 0)
      void vscode.window.showInformationMessage(
        `${cluster.name}: every certificate on ${result.hosts.length} host(s) is the workspace's, served as deployed, and valid for more than ${result.warnDays} days.`,
      );
    else
      void vscode.window.showWarningMessage(
        `${cluster.name}: ${result.findings[0]!.text}${n > 1 ? ` (and ${n - 1} more finding(s) in the report)` : ''}`,
      );
  };
}
