/**
 * Reads from the hosts made on demand only (a command, a task that ended well, a Refresh), never
 * on a timer (SSH may prompt) and never in Restricted Mode. One read per cluster at a time (a
 * second caller awaits the first); while it runs the state says so, and the last result (or why
 * it failed) stays for the tree. A cancelled read leaves what was known before it.
 */
import * as vscode from 'vscode';
import { errorMessage, isCancelled } from '../core/errors';
import type { ReadState } from '../core/tree/readState';
import type { TrustGuard } from './trust';

export class OnDemandReads<R> implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose state changed. */
  readonly onDidChange = this.changed.event;
  private readonly map = new Map<string, ReadState<R>>();
  private readonly runs = new Map<string, Promise<R>>();

  /** `what`: the read in words, for the trust refusal ("Reading the backups on the hosts"). */
  constructor(
    private readonly trust: TrustGuard,
    private readonly what: string,
  ) {}

  states(): ReadonlyMap<string, ReadState<R>> {
    return this.map;
  }

  /** Keeps a result read elsewhere (the same as a read). */
  set(cluster: string, result: R): void {
    this.map.set(cluster, { at: Date.now(), result });
    this.changed.fire(cluster);
  }

  /** Runs `read` for `cluster` unless one is running (then that one is awaited). */
  protected start(cluster: string, read: () => Promise<R>): Promise<R> {
    this.trust.require(this.what);
    const running = this.runs.get(cluster);
    if (running) return running;
    const before = this.map.get(cluster);
    this.map.set(cluster, { ...(before ?? { at: Date.now() }), reading: true });
    this.changed.fire(cluster);
    const p = read().then(
      (result) => {
        this.set(cluster, result);
        return result;
      },
      (err: unknown) => {
        if (isCancelled(err)) {
          if (before) this.map.set(cluster, before);
          else this.map.delete(cluster);
        } else this.map.set(cluster, { at: Date.now(), error: errorMessage(err) });
        this.changed.fire(cluster);
        throw err;
      },
    );
    const tracked = p.finally(() => this.runs.delete(cluster));
    this.runs.set(cluster, tracked);
    return tracked;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
