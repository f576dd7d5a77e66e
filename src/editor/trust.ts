/**
 * Workspace trust, in one place. In Restricted Mode (a folder the person has not trusted) the
 * inventory is shown and validated, but nothing connects: no etcd gRPC, no `/metrics` scrape, no
 * SSH, no scheduled snapshot, no task. The pollers, the snapshot schedule, the command table and
 * the task provider ask this guard; when the person grants trust, whatever waited starts.
 * (VS Code cannot take trust back without reloading the window, so trust only ever grows here.)
 */
import * as vscode from 'vscode';
import { MANAGE_TRUST_COMMAND } from '../core/tree/model';

export const MANAGE_TRUST_BUTTON = 'Manage Workspace Trust';

/** What a refused action says: why nothing ran, and what to do. */
export function untrustedMessage(what: string): string {
  return (
    `${what} needs a trusted workspace. This folder is in Restricted Mode: K3s etcd shows its ` +
    'inventory but connects to nothing (no SSH, no etcd, no metrics). Trust the folder if you ' +
    'wrote its k3s-etcd.yaml or trust whoever did.'
  );
}

/** Thrown when something that connects is asked for in Restricted Mode. */
export class UntrustedWorkspaceError extends Error {
  constructor(readonly what: string) {
    super(untrustedMessage(what));
    this.name = 'UntrustedWorkspaceError';
  }
}

export class TrustGuard implements vscode.Disposable {
  private readonly granted = new vscode.EventEmitter<void>();
  /** Fires once the person trusts the workspace. */
  readonly onDidGrant = this.granted.event;
  private readonly disposables: vscode.Disposable[] = [
    this.granted,
    vscode.workspace.onDidGrantWorkspaceTrust(() => this.granted.fire()),
  ];

  get trusted(): boolean {
    return vscode.workspace.isTrusted;
  }

  /** Throws `UntrustedWorkspaceError` naming `what` unless the workspace is trusted. */
  require(what: string): void {
    if (!this.trusted) throw new UntrustedWorkspaceError(what);
  }

  /** Calls `start` now when trusted, otherwise once trust is granted. */
  whenTrusted(start: () => void): vscode.Disposable {
    if (this.trusted) {
      start();
      return new vscode.Disposable(() => undefined);
    }
    return this.onDidGrant(start);
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

/** Shows a refusal with a button that opens the Workspace Trust editor. */
export async function explainUntrusted(err: UntrustedWorkspaceError): Promise<void> {
  const choice = await vscode.window.showWarningMessage(err.message, MANAGE_TRUST_BUTTON);
  if (choice === MANAGE_TRUST_BUTTON) await vscode.commands.executeCommand(MANAGE_TRUST_COMMAND);
}
