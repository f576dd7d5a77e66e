/**
 * What fills each cluster's keyspace, computed on demand only (the Keyspace tab opening, its
 * Refresh, or a command): never on a timer, since a scan reads every key. One scan per cluster
 * at a time, cancellable; the last result stays for the panel and the tree's tooltip.
 */
import * as vscode from 'vscode';
import { connectionFor } from '../core/etcd/connection';
import { errorMessage, isCancelled } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import { answeringClient } from '../core/keyspace/client';
import {
  scanKeyspace,
  summaryOf,
  type KeyspaceReport,
  type KeyspaceSummary,
} from '../core/keyspace/scan';
import { showKey, type KeyValueView } from '../core/keyspace/view';
import type { TrustGuard } from './trust';

export interface KeyspaceState {
  report?: KeyspaceReport;
  /** When the report was made (ms since the epoch). */
  at?: number;
  error?: string;
  /** Set while a scan runs: what it has read so far. */
  running?: { keys: number; bytes: number };
}

export class KeyspaceService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose keyspace state changed. */
  readonly onDidChange = this.changed.event;
  private readonly states = new Map<string, KeyspaceState>();
  /** Summaries another operation read (the rescue's "what fills the space"), by cluster. */
  private readonly read = new Map<string, KeyspaceSummary & { at: number }>();
  private readonly runs = new Map<string, { controller: AbortController; done: Promise<void> }>();

  constructor(
    private readonly trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  state(cluster: string): KeyspaceState {
    return this.states.get(cluster) ?? {};
  }

  /** The last summary of every cluster scanned or read (for the tree's tooltip): the newer wins. */
  summaries(): ReadonlyMap<string, KeyspaceSummary & { at: number }> {
    const out = new Map(this.read);
    for (const [name, s] of this.states)
      if (s.report && s.at && s.at >= (out.get(name)?.at ?? 0))
        out.set(name, { ...summaryOf(s.report, 3), at: s.at });
    return out;
  }

  /**
   * A summary that another operation read (a NOSPACE rescue's report): the tree's tooltip shows
   * its top consumer until a newer scan. `at`: when it was read (ms since the epoch).
   */
  remember(cluster: string, summary: KeyspaceSummary, at: number): void {
    this.read.set(cluster, { ...summary, at });
    this.changed.fire(cluster);
  }

  /** Scans `cluster` (a scan already running is awaited instead of started twice). */
  async scan(cluster: Cluster, opts: { top?: number } = {}): Promise<KeyspaceState> {
    this.trust.require('A keyspace scan');
    const running = this.runs.get(cluster.name);
    if (running) {
      await running.done;
      return this.state(cluster.name);
    }
    const controller = new AbortController();
    const done = this.run(cluster, controller, opts.top ?? 20);
    this.runs.set(cluster.name, { controller, done });
    try {
      await done;
    } finally {
      this.runs.delete(cluster.name);
    }
    return this.state(cluster.name);
  }

  cancel(cluster: string): void {
    this.runs.get(cluster)?.controller.abort();
  }

  private set(cluster: string, s: KeyspaceState): void {
    this.states.set(cluster, s);
    this.changed.fire(cluster);
  }

  private async run(cluster: Cluster, controller: AbortController, top: number): Promise<void> {
    const prev = this.state(cluster.name);
    this.set(cluster.name, { ...prev, running: { keys: 0, bytes: 0 } });
    let lastFire = 0;
    try {
      const conn = await connectionFor(cluster);
      const { client, endpoint } = await answeringClient(conn.endpoints, { tls: conn.tls });
      try {
        const report = await scanKeyspace(client, {
          top,
          signal: controller.signal,
          onProgress: (p) => {
            if (Date.now() - lastFire < 250) return;
            lastFire = Date.now();
            this.set(cluster.name, { ...this.state(cluster.name), running: p });
          },
        });
        this.log.info(
          `keyspace of ${cluster.name} from ${endpoint}: ${report.keys} keys in ${report.elapsedMs} ms`,
        );
        this.set(cluster.name, { report, at: Date.now() });
      } finally {
        client.close();
      }
    } catch (err) {
      if (isCancelled(err)) this.set(cluster.name, { ...prev });
      else this.set(cluster.name, { ...prev, error: errorMessage(err) });
    }
  }

  /** One key's decoded value (a Secret: metadata only). */
  async showKey(cluster: Cluster, key: string): Promise<KeyValueView> {
    this.trust.require('Showing a key');
    const conn = await connectionFor(cluster);
    const { client } = await answeringClient(conn.endpoints, { tls: conn.tls });
    try {
      return await showKey(client, key);
    } finally {
      client.close();
    }
  }

  dispose(): void {
    for (const r of this.runs.values()) r.controller.abort();
    this.changed.dispose();
  }
}
