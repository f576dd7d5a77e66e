/** Long work: a cancellable notification whose token becomes the core's AbortSignal. */
import * as vscode from 'vscode';

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
