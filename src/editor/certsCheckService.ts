/**
 * What `certs check` found on the hosts, read over SSH on demand only (Check Deployed
 * Certificates), never on a timer (SSH may prompt) and never in Restricted Mode. One check per
 * cluster at a time; the last result stays in memory for the tree (the Certificates node and the
 * host rows), like the backup status.
 */
import * as vscode from 'vscode';
import { errorMessage, isCancelled } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import { checkDeployedCertificates, type CertsCheck } from '../core/pkiHost/check';
import type { SshContext } from '../core/ssh/hostSession';
import type { CertsCheckState } from '../core/tree/certsCheck';
import type { TrustGuard } from './trust';

export class CertsCheckService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose check changed. */
  readonly onDidChange = this.changed.event;
  private readonly map = new Map<string, CertsCheckState>();
  private readonly runs = new Map<string, Promise<CertsCheck>>();

  constructor(
    private readonly trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  states(): ReadonlyMap<string, CertsCheckState> {
    return this.map;
  }

  /** Checks `cluster`'s hosts (a check already running is awaited, not started twice). */
  check(
    cluster: Cluster,
    ssh: SshContext,
    warnDays: number,
    signal?: AbortSignal,
  ): Promise<CertsCheck> {
    this.trust.require('Checking the certificates on the hosts');
    const running = this.runs.get(cluster.name);
    if (running) return running;
    const p = this.run(cluster, ssh, warnDays, signal).finally(() =>
      this.runs.delete(cluster.name),
    );
    this.runs.set(cluster.name, p);
    return p;
  }

  private async run(cluster: Cluster, ssh: SshContext, warnDays: number, signal?: AbortSignal) {
    try {
      const result = await checkDeployedCertificates(cluster, {
        ssh,
        warnDays,
        ...(signal ? { signal } : {}),
      });
      this.log.info(
        `certificates of ${cluster.name} on ${result.hosts.length} host(s): ${result.findings.length === 0 ? 'all fine' : `${result.findings.length} finding(s): ${result.findings.map((f) => f.text).join('; ')}`}`,
      );
      this.map.set(cluster.name, { at: Date.now(), result });
      this.changed.fire(cluster.name);
      return result;
    } catch (err) {
      if (!isCancelled(err)) {
        this.map.set(cluster.name, { at: Date.now(), error: errorMessage(err) });
        this.changed.fire(cluster.name);
      }
      throw err;
    }
  }

  dispose(): void {
    this.changed.dispose();
  }
}
