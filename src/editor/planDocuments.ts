/**
 * Read-only documents holding plan previews, shown rendered (VS Code's Markdown preview): the
 * dry run of a plan as tables, each host's script one click away as a read-only shell document.
 */
import * as vscode from 'vscode';
import type { HostRun } from '../core/plan/runner';
import { planPreviewMarkdown, type PlanPreviewOptions } from '../core/plan/words';
import { localStamp } from '../core/format/stamp';

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

/** A plan document's URI: `name` ends in .md (a preview) or .sh (a script). */
export function planUri(name: string): vscode.Uri {
  return vscode.Uri.from({ scheme: PLAN_SCHEME, path: `/${name}` });
}

/**
 * Shows `text` (Markdown) rendered, read-only, in the active editor group; as a read-only
 * Markdown document where VS Code's Markdown extension is missing or disabled.
 */
export async function showPlan(docs: PlanDocuments, uri: vscode.Uri, text: string): Promise<void> {
  docs.set(uri, text);
  if (vscode.extensions.getExtension('vscode.markdown-language-features')) {
    await vscode.commands.executeCommand('markdown.showPreview', uri);
    return;
  }
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), {
    preview: false,
  });
}

/** A file name part from a host or cluster name: letters, digits, dot, dash and underscore. */
const safe = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_');

/**
 * A dry run shown as a plan: `name`.md rendered, and beside it each planned host's script as
 * `name`/`host`.sh, linked from the host's section (a relative link the preview opens).
 */
export async function showRunPreview(
  docs: PlanDocuments,
  name: string,
  title: string,
  runs: readonly HostRun[],
  apply = 'K3s etcd: Provision etcd',
  sections: PlanPreviewOptions['sections'] = [],
): Promise<void> {
  const base = safe(name);
  const scripts = new Map<string, string>();
  for (const r of runs) {
    if (!r.script) continue;
    const file = `${base}/${safe(r.host)}.sh`;
    docs.set(planUri(file), r.script);
    scripts.set(r.host, file);
  }
  const text = planPreviewMarkdown(title, runs, {
    apply,
    madeAt: localStamp(new Date()),
    scriptLink: (host) => scripts.get(host),
    sections,
  });
  await showPlan(docs, planUri(`${base}.md`), text);
}
