/**
 * K3s server states for the tree, read over SSH only when asked (Refresh K3s Server State, or
 * after an install): SSH may prompt, so it never runs on a timer.
 */
import * as vscode from 'vscode';
import { readK3sServerState } from '../core/k3s/ops';
import { k3sServers } from '../core/inventory/select';
import type { K3sServerState } from '../core/k3s/state';
import type { Cluster } from '../core/inventory/types';
import type { SshContext } from '../core/ssh/hostSession';

export class K3sStateService implements vscode.Disposable {
  private readonly map = new Map<string, K3sServerState>();
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  states(): ReadonlyMap<string, K3sServerState> {
    return this.map;
  }

  /** Reads every K3s server of `cluster` (in parallel); failures are kept as states. */
  async refresh(
    cluster: Cluster,
    ssh: SshContext,
    signal?: AbortSignal,
  ): Promise<K3sServerState[]> {
    const servers = k3sServers(cluster);
    const states = await Promise.all(
      servers.map((h) => readK3sServerState(cluster, h, ssh, signal)),
    );
    servers.forEach((h, i) =>
      this.map.set(`${cluster.name}/${h.name}`, states[i] as K3sServerState),
    );
    this.changed.fire();
    return states;
  }

  dispose(): void {
    this.changed.dispose();
  }
}
