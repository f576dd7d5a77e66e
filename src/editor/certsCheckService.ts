/**
 * What `certs check` found on the hosts, read over SSH on demand only (Check Deployed
 * Certificates), never on a timer (SSH may prompt) and never in Restricted Mode. One check per
 * cluster at a time; the last result stays in memory for the tree (the Certificates node and the
 * host rows), like the backup status.
 */
import type * as vscode from 'vscode';
import type { Cluster } from '../core/inventory/types';
import { checkDeployedCertificates, type CertsCheck } from '../core/pkiHost/check';
import type { SshContext } from '../core/ssh/hostSession';
import { OnDemandReads } from './onDemandReads';
import type { TrustGuard } from './trust';

export class CertsCheckService extends OnDemandReads<CertsCheck> {
  constructor(
    trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {
    super(trust, 'Checking the certificates on the hosts');
  }

  /** Checks `cluster`'s hosts (a check already running is awaited, not started twice). */
  check(
    cluster: Cluster,
    ssh: SshContext,
    warnDays: number,
    signal?: AbortSignal,
  ): Promise<CertsCheck> {
    return this.start(cluster.name, async () => {
      const result = await checkDeployedCertificates(cluster, {
        ssh,
        warnDays,
        ...(signal ? { signal } : {}),
      });
      this.log.info(
        `certificates of ${cluster.name} on ${result.hosts.length} host(s): ${result.findings.length === 0 ? 'all fine' : `${result.findings.length} finding(s): ${result.findings.map((f) => f.text).join('; ')}`}`,
      );
      return result;
    });
  }
}
