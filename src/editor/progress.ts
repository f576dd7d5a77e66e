/** Long work: a cancellable notification whose token becomes the core's AbortSignal. */
import * as vscode from 'vscode';
import { backupProgressText, type BackupProgress } from '../core/k3s/backup';

export function withCancellableProgress<T>(
  title: string,
  work: (report: (message: string) => void, signal: AbortSignal) => Promise<T>,
): Thenable<T> {
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title, cancellable: true },
    (progress, token) => {
      const controller = new AbortController();
      const sub = token.onCancellationRequested(() => controller.abort());
      return work((message) => progress.report({ message }), controller.signal).finally(() =>
        sub.dispose(),
      );
    },
  );
}

/** Byte progress in words for `report`, at most a few times a second. */
export function bytesReporter(
  report: (message: string) => void,
  every = 250,
): (p: BackupProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < every && p.bytes < p.total) return;
    last = now;
    report(backupProgressText(p));
  };
}
