/**
 * Runs `check perf` for a cluster: one run per cluster at a time (a second start is refused),
 * the load in a worker thread (the core's runPerfCheck), progress in a cancellable notification
 * that outlives the panel, the result saved under .k3s-etcd/reports/, and compaction plus
 * defragmentation offered afterwards: in a notification and, until done, in the panel's
 * Performance tab (the database keeps the writes' space until then). Before the load the core's preflight reads the cluster: a
 * run that could take the database too near its quota is refused with the reason, one on a
 * cluster holding K3s data asks first, and a NOSPACE alarm raised during the run is cleaned up.
 */
import * as vscode from 'vscode';
import { dirname, join } from 'node:path';
import { connectionFor } from '../core/etcd/connection';
import { compactAndDefrag, runPerfCheck } from '../core/perf/perf';
import { perfPreflight, recoverFromNoSpace, type PerfPreflight } from '../core/perf/guard';
import { dbSpace, keptSpaceText, reclaimedText } from '../core/perf/reclaim';
import type { EtcdTls } from '../core/etcd/client';
import type { PerfLoad, PerfProgress, PerfResult } from '../shared/perfTypes';
import { errorMessage, isCancelled } from '../core/errors';
import type { Cluster } from '../core/inventory/types';
import { listReports, REPORTS_DIR, saveReport, verdictOf } from '../core/perf/reports';
import {
  PERF_RECLAIM_LABEL as RECLAIM,
  type PerfPanelState,
  type PerfReclaim,
} from '../shared/protocol';
import type { InventoryService } from './inventoryService';
import type { TrustGuard } from './trust';

interface Run {
  controller: AbortController;
  load: PerfLoad;
  totalMs: number;
  phase: 'starting' | 'writing' | 'cleaning';
  seconds: PerfProgress[];
}

/** The space the last run of a cluster left behind, and where to reclaim it. */
interface Reclaim extends PerfReclaim {
  revision: string;
  endpoints: string[];
  tls: EtcdTls | undefined;
}

export class PerfService implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<string>();
  /** Fires with the cluster name whose perf state changed. */
  readonly onDidChange = this.changed.event;
  private readonly runs = new Map<string, Run>();
  private readonly last = new Map<
    string,
    { seconds: PerfProgress[]; result?: PerfResult; error?: string }
  >();
  private readonly reclaims = new Map<string, Reclaim>();

  constructor(
    private readonly inventory: InventoryService,
    private readonly trust: TrustGuard,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  reportsDir(): string | undefined {
    const file = this.inventory.file();
    return file ? join(dirname(file), REPORTS_DIR) : undefined;
  }

  async state(cluster: string): Promise<PerfPanelState> {
    const run = this.runs.get(cluster);
    const last = this.last.get(cluster);
    const dir = this.reportsDir();
    const reports = dir ? await listReports(dir, cluster) : [];
    const reclaim = this.reclaims.get(cluster);
    return {
      ...(run ? { running: { load: run.load, totalMs: run.totalMs, phase: run.phase } } : {}),
      seconds: run?.seconds ?? last?.seconds ?? [],
      ...(last?.result && !run ? { result: last.result } : {}),
      ...(last?.error && !run ? { error: last.error } : {}),
      ...(reclaim && !run ? { reclaim: { state: reclaim.state, message: reclaim.message } } : {}),
      reports: reports.map(({ file, startedAt, load, verdict, rps, target }) => ({
        file,
        startedAt,
        load,
        verdict,
        rps,
        target,
      })),
    };
  }

  isRunning(cluster: string): boolean {
    return this.runs.has(cluster);
  }

  cancel(cluster: string): void {
    this.runs.get(cluster)?.controller.abort();
  }

  /** Starts a check; refuses while one runs on the same cluster. Resolves when it has finished. */
  async start(cluster: Cluster, load: PerfLoad, durationSec: number): Promise<void> {
    this.trust.require('A performance check');
    if (this.runs.has(cluster.name)) {
      void vscode.window.showWarningMessage(
        `A performance check is already running on ${cluster.name}. Wait for it or cancel it first.`,
      );
      return;
    }
    const conn = await connectionFor(cluster);
    const pre = await this.preflight(cluster, conn, load, durationSec);
    if (!pre) return;
    const run: Run = {
      controller: new AbortController(),
      load,
      totalMs: durationSec * 1000,
      phase: 'starting',
      seconds: [],
    };
    this.runs.set(cluster.name, run);
    this.last.set(cluster.name, { seconds: [] });
    this.reclaims.delete(cluster.name);
    this.changed.fire(cluster.name);
    this.log.info(
      `Performance check on ${cluster.name}: load ${load}, ${durationSec} s, ${conn.endpoints.join(', ')}`,
    );
    try {
      const result = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `etcd check perf (${load}) on ${cluster.name}`,
          cancellable: true,
        },
        async (progress, token) => {
          token.onCancellationRequested(() => run.controller.abort());
          let reported = 0;
          return runPerfCheck({
            endpoints: conn.endpoints,
            tls: conn.tls,
            load,
            durationSec,
            signal: run.controller.signal,
            onPhase: (phase) => {
              run.phase = phase;
              if (phase === 'cleaning') progress.report({ message: 'deleting the test keys' });
              this.changed.fire(cluster.name);
            },
            onProgress: (p) => {
              run.seconds.push(p);
              const pct = Math.min(100, (p.elapsedMs / p.totalMs) * 100);
              progress.report({
                increment: pct - reported,
                message: `${Math.round(p.elapsedMs / 1000)}/${Math.round(p.totalMs / 1000)} s, ${p.writes} writes/s`,
              });
              reported = pct;
              this.changed.fire(cluster.name);
            },
          });
        },
      );
      this.last.set(cluster.name, { seconds: run.seconds, result });
      const dir = this.reportsDir();
      if (dir) await saveReport(dir, cluster.name, result);
      this.log.info(
        `Performance check on ${cluster.name}: ${verdictOf(result)}, ${result.rps.toFixed(0)} writes/s; clean-up ${result.cleanedUp ? 'done' : `FAILED: ${result.cleanupError ?? ''}`}`,
      );
      const recovery = await recoverFromNoSpace({
        endpoints: conn.endpoints,
        ...(conn.tls ? { tls: conn.tls } : {}),
        prefix: result.prefix,
        quotaBytes: pre.quotaBytes,
      });
      if (recovery.raised) {
        for (const step of recovery.steps) this.log.warn(`${cluster.name}: NOSPACE: ${step}`);
        const words = `${recovery.steps.join('; ')}.`;
        void (recovery.recovered
          ? vscode.window.showWarningMessage(`check perf on ${cluster.name}: ${words}`)
          : vscode.window.showErrorMessage(`check perf on ${cluster.name}: ${words}`));
        return;
      }
      void this.afterRun(cluster, conn.endpoints, conn.tls, result);
    } catch (err) {
      const message = isCancelled(err) ? 'Cancelled before it started.' : errorMessage(err);
      this.last.set(cluster.name, { seconds: run.seconds, error: message });
      if (!isCancelled(err)) throw err;
    } finally {
      this.runs.delete(cluster.name);
      this.changed.fire(cluster.name);
    }
  }

  /**
   * Reads the cluster before the load. Undefined when the check must not run: refused (the
   * reason shown) or not confirmed on a cluster that holds K3s data.
   */
  private async preflight(
    cluster: Cluster,
    conn: Awaited<ReturnType<typeof connectionFor>>,
    load: PerfLoad,
    durationSec: number,
  ): Promise<PerfPreflight | undefined> {
    const pre = await vscode.window.withProgress(
      {
        location: vscode.ProgressLocation.Notification,
        title: `Reading ${cluster.name} before the performance check`,
      },
      () =>
        perfPreflight({
          endpoints: conn.endpoints,
          ...(conn.tls ? { tls: conn.tls } : {}),
          load,
          durationSec,
        }),
    );
    this.log.info(
      `Performance check preflight on ${cluster.name}: ${pre.registryKeys} keys under /registry/, DB ${pre.dbBytes} B, quota ${pre.quotaBytes} B (${pre.quotaFrom}), up to ${pre.projectedBytes} B to write${pre.refusal ? '; refused' : ''}`,
    );
    if (pre.refusal) {
      void vscode.window.showErrorMessage(`Not running the check on ${cluster.name}.`, {
        modal: true,
        detail: pre.refusal,
      });
      return undefined;
    }
    if (pre.confirmation) {
      const choice = await vscode.window.showWarningMessage(
        `Run check perf (${load}) on ${cluster.name}, which holds K3s data?`,
        { modal: true, detail: pre.confirmation },
        'Run Check',
      );
      if (choice !== 'Run Check') return undefined;
    }
    return pre;
  }

  /** The verdict, and etcdctl's missing step: free the space the check's writes took. */
  private async afterRun(
    cluster: Cluster,
    endpoints: string[],
    tls: EtcdTls | undefined,
    r: PerfResult,
  ): Promise<void> {
    if (r.deleteRevision) {
      const space = await dbSpace(endpoints, { timeoutMs: 10_000, ...(tls ? { tls } : {}) });
      this.reclaims.set(cluster.name, {
        state: 'offered',
        message: keptSpaceText(r.deleteRevision, space.dbBytes > 0 ? space : undefined),
        revision: r.deleteRevision,
        endpoints,
        tls,
      });
      this.changed.fire(cluster.name);
    }
    const verdict = verdictOf(r);
    const text = `check perf (${r.load}) on ${cluster.name}: ${verdict}, ${r.rps.toFixed(0)} writes/s of ${r.target}; slowest ${(r.slowestMs / 1000).toFixed(3)} s.`;
    const show =
      verdict === 'PASS' ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    const actions = r.deleteRevision ? [RECLAIM] : [];
    const choice = await show(
      `${text}${r.deleteRevision ? ' The test writes still take space until compaction and defragmentation (also offered in the Performance tab).' : ''}`,
      ...actions,
    );
    if (choice === RECLAIM) await this.reclaim(cluster.name);
  }

  /**
   * Compacts at the last run's delete revision and defragments every member, once; the panel's
   * notice says how it went (and offers it again when it did not finish).
   */
  async reclaim(cluster: string): Promise<void> {
    this.trust.require('Compacting and defragmenting');
    const offer = this.reclaims.get(cluster);
    if (!offer || offer.state === 'running' || offer.state === 'done') return;
    offer.state = 'running';
    offer.message = `Compacting at revision ${offer.revision} and defragmenting every member, one at a time…`;
    this.changed.fire(cluster);
    const conn = { timeoutMs: 10_000, ...(offer.tls ? { tls: offer.tls } : {}) };
    try {
      const res = await vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: `Compacting and defragmenting ${cluster}`,
        },
        () => compactAndDefrag(offer.endpoints, offer.tls, offer.revision),
      );
      const failed = res.defragmented.filter((d) => !d.ok);
      this.log.info(
        `Compact at ${res.revision}: ${res.compacted}; defragmented ${res.defragmented.length - failed.length}/${res.defragmented.length}`,
      );
      const ok = res.compacted && failed.length === 0 && res.defragmented.length > 0;
      offer.state = ok ? 'done' : 'failed';
      offer.message = reclaimedText(res, ok ? await dbSpace(offer.endpoints, conn) : undefined);
      void (ok
        ? vscode.window.showInformationMessage(`${cluster}: ${offer.message}`)
        : vscode.window.showWarningMessage(`${cluster}: ${offer.message}`));
    } catch (err) {
      offer.state = 'failed';
      offer.message = `Compaction and defragmentation failed: ${errorMessage(err)}`;
      void vscode.window.showWarningMessage(`${cluster}: ${offer.message}`);
    } finally {
      this.changed.fire(cluster);
    }
  }

  dispose(): void {
    for (const r of this.runs.values()) r.controller.abort();
    this.changed.dispose();
  }
}
