/**
 * One wrapper around every command: logs the stack, shows what failed and what to do with an
 * "Open Log" button, and stays silent when the user cancelled.
 */
import * as vscode from 'vscode';
import { errorMessage, isCancelled } from '../core/errors';

export async function showError(
  log: vscode.LogOutputChannel,
  what: string,
  err: unknown,
): Promise<void> {
  if (isCancelled(err)) {
    log.info(`${what}: cancelled`);
    return;
  }
  log.error(`${what} failed`, err instanceof Error ? (err.stack ?? err.message) : String(err));
  const choice = await vscode.window.showErrorMessage(
    `${what} failed: ${errorMessage(err)}`,
    'Open Log',
  );
  if (choice === 'Open Log') log.show(true);
}
