/** Read-only documents holding plan previews, and the dry run of a plan as one (markdown). */
import * as vscode from 'vscode';
import { summarizeRun, type HostRun } from '../core/plan/runner';

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
