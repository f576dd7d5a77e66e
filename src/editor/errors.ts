/**
 * One wrapper around every command: logs the stack, shows what failed and what to do with an
 * "Open Log" button, and stays silent when the user cancelled. A refusal in Restricted Mode is
 * no failure: it says why and offers the Workspace Trust editor.
 */
import * as vscode from 'vscode';
import { errorMessage, isCancelled } from '../core/errors';
import { explainUntrusted, UntrustedWorkspaceError } from './trust';

export async function showError(
  log: vscode.LogOutputChannel,
  what: string,
  err: unknown,
): Promise<void> {
  if (isCancelled(err)) {
    log.info(`${what}: cancelled`);
    return;
  }
  if (err instanceof UntrustedWorkspaceError) {
    log.info(`${what}: refused in Restricted Mode (the workspace is not trusted)`);
    await explainUntrusted(err);
    return;
  }
  log.error(`${what} failed`, err instanceof Error ? (err.stack ?? err.message) : String(err));
  const choice = await vscode.window.showErrorMessage(
    `${what} failed: ${errorMessage(err)}`,
    'Open Log',
  );
  if (choice === 'Open Log') log.show(true);
}
