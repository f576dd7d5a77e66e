/** `k3s-etcd perf`: etcdctl's `check perf` through the cluster's TLS, with live progress. */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { EtcdTls } from '../core/etcd/client';
import { exportLines } from '../core/etcd/etcdctlEnv';
import { INVENTORY_FILE_NAME } from '../core/inventory/types';
import { shellQuote } from '../core/ssh/quote';
import {
  compactAndDefrag,
  DEFAULT_PERF_DURATION_SEC,
  DEFAULT_PERF_PREFIX,
  isPerfLoad,
  PERF_LOADS,
  PERF_PROFILES,
  runPerfCheck,
  type CompactDefragResult,
  type PerfProgress,
  PerfError,
} from '../core/perf/perf';
import { formatPerfReport } from '../core/perf/reports';
import { perfPreflight, recoverFromNoSpace, type NoSpaceRecovery } from '../core/perf/guard';
import { dbSpace, keptSpaceText, spaceReclaimed, type DbSpace } from '../core/perf/reclaim';
import {
  confirm,
  json,
  UsageError,
  type Options,
  type RunContext,
  type Subcommand,
} from './context';
import { etcdTarget } from './etcdTarget';

const PERF_OPTIONS: Options = {
  load: { type: 'string' },
  duration: { type: 'string' },
  prefix: { type: 'string' },
  'auto-compact': { type: 'boolean', default: false },
  'auto-defrag': { type: 'boolean', default: false },
  report: { type: 'string' },
  endpoints: { type: 'string' },
  cacert: { type: 'string' },
  cert: { type: 'string' },
  key: { type: 'string' },
};

/** etcdctl's aliases for --load. */
const LOAD_ALIASES: Record<string, string> = { small: 's', medium: 'm', large: 'l', xLarge: 'xl' };

const pad = (n: number, width: number) => String(n).padStart(width);

function progressLine(p: PerfProgress): string {
  const total = Math.round(p.totalMs / 1000);
  const w = String(total).length;
  // The last second of a cancelled run is partial: say how long it was.
  const span = p.elapsedMs - (p.second - 1) * 1000;
  const full = span >= 990;
  const at = full ? pad(p.second, w) : (p.elapsedMs / 1000).toFixed(1).padStart(w);
  const count = full
    ? `${pad(p.writes, 5)} writes/s`
    : `${pad(p.writes, 5)} writes in ${(span / 1000).toFixed(2)} s`;
  return (
    `[${at}/${total} s] ${count}` +
    `  p50 ${p.p50Ms.toFixed(1)} ms  p99 ${p.p99Ms.toFixed(1)} ms  max ${p.maxMs.toFixed(1)} ms` +
    (p.errorsSoFar > 0 ? `  errors ${p.errorsSoFar}` : '')
  );
}

/** How etcdctl reaches the cluster the check ran on: the inventory's cluster, or the flags. */
export type EtcdctlTarget =
  { cluster: string; inventory?: string } | { endpoints: readonly string[]; tls?: EtcdTls };

/**
 * After a run whose space is still held: the sizes, and the commands that give it back (only the
 * steps --auto-compact and --auto-defrag did not already do).
 */
export function reclaimAdvice(opts: {
  revision: string;
  space: DbSpace | undefined;
  maintenance: CompactDefragResult | undefined;
  target: EtcdctlTarget;
  /** Whether both --auto-compact and --auto-defrag were given. */
  auto: boolean;
}): string[] {
  const t = opts.target;
  const env =
    'cluster' in t
      ? [
          `eval "$(k3s-etcd etcdctl-env --cluster ${shellQuote(t.cluster)}${t.inventory ? ` --inventory ${shellQuote(t.inventory)}` : ''})"`,
        ]
      : t.tls && 'ca' in t.tls
        ? [] // certificates held in memory only: etcdctl needs them as files
        : exportLines({
            ETCDCTL_API: '3',
            ETCDCTL_ENDPOINTS: t.endpoints.join(','),
            ...(t.tls
              ? {
                  ETCDCTL_CACERT: t.tls.caFile,
                  ETCDCTL_CERT: t.tls.certFile,
                  ETCDCTL_KEY: t.tls.keyFile,
                }
              : {}),
          }).split('\n');
  const steps = [
    ...env,
    ...(opts.maintenance?.compacted ? [] : [`etcdctl compact ${opts.revision} --physical`]),
    'etcdctl defrag',
  ];
  return [
    keptSpaceText(opts.revision, opts.space),
    `Give it back${env.length ? '' : ' with etcdctl pointed at the cluster'} (defrag blocks each member for a moment):`,
    ...steps.map((l) => `  ${l}`),
    ...(opts.auto ? [] : ['or run the check with --auto-compact --auto-defrag next time.']),
  ];
}

/** SIGINT cancels the check (its keys are still deleted); a second one quits at once. */
function cancelOnSigint(ctx: RunContext, prefix: string): { signal: AbortSignal; dispose(): void } {
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) {
      ctx.io.err(`Quit without cleaning up: delete the keys with etcdctl del --prefix ${prefix}`);
      process.exit(130);
    }
    ctx.io.err(`Cancelling; deleting the keys under ${prefix} (Ctrl+C again to quit at once)...`);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: abort.signal, dispose: () => process.off('SIGINT', onSigint) };
}

export const PERF_COMMANDS: Subcommand[] = [
  {
    name: 'perf',
    summary:
      "Check the cluster's write performance (the workloads and verdict of `etcdctl check perf`)",
    usage:
      'k3s-etcd perf --load s|m|l|xl [--duration SECONDS] [--prefix P] [--auto-compact] [--auto-defrag]\n' +
      '                [--report FILE.md] [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details:
      'Loads: s 50 clients at 150 writes/s, m 200 at 1000, l 500 at 8000, xl 1000 at 15000; 60 s by\n' +
      'default, 256-byte keys and 1 KiB values under --prefix (default /etcdctl-check-perf/), which\n' +
      'must be empty. PASS needs no errors, throughput above 90% of the target, the slowest write at\n' +
      'most 0.5 s and a stddev at most 0.1 s. The keys are always deleted afterwards, also after\n' +
      'Ctrl+C; --auto-compact and --auto-defrag then free their space, as in etcdctl. Before the load\n' +
      'the cluster is read: a run that could take the database past 60% of its quota is refused (with\n' +
      'the longest duration that fits), a cluster holding K3s data (keys under /registry/) needs a\n' +
      'confirmation (asked on a terminal, or --yes), and if etcd raises NOSPACE during the run the\n' +
      'keys are deleted, the history compacted, every member defragmented and the alarm disarmed.\n' +
      'Progress goes to\n' +
      "stderr once a second; etcdctl's verdict lines to stdout. --report writes a Markdown report.\n" +
      'Endpoints and TLS as for `k3s-etcd health`. Exit 0 on PASS, 1 on FAIL, 130 when cancelled.',
    options: PERF_OPTIONS,
    async run(ctx) {
      const v = ctx.values;
      const loadArg = typeof v['load'] === 'string' ? v['load'] : 's';
      const load = LOAD_ALIASES[loadArg] ?? loadArg;
      if (!isPerfLoad(load))
        throw new UsageError(`unknown --load "${loadArg}" (one of: ${PERF_LOADS.join(', ')})`);
      const durationSec =
        typeof v['duration'] === 'string' ? Number(v['duration']) : DEFAULT_PERF_DURATION_SEC;
      if (!Number.isFinite(durationSec) || durationSec <= 0 || durationSec > 3600)
        throw new UsageError('--duration is a number of seconds, above 0 and at most 3600');
      const prefix = typeof v['prefix'] === 'string' ? v['prefix'] : DEFAULT_PERF_PREFIX;
      if (prefix === '') throw new UsageError('--prefix must not be empty');
      const target = await etcdTarget(ctx);
      const profile = PERF_PROFILES[load];
      const pre = await perfPreflight({
        endpoints: target.endpoints,
        ...(target.tls ? { tls: target.tls } : {}),
        load,
        durationSec,
      });
      if (pre.refusal) throw new PerfError('unsafe', `Not running the check: ${pre.refusal}`);
      if (pre.confirmation) {
        ctx.io.err(pre.confirmation);
        if (!(await confirm(ctx, 'Run the check on this cluster?'))) {
          ctx.io.err('Not run.');
          return 1;
        }
      }
      ctx.io.err(
        `Checking performance: load ${load} (${profile.clients} clients, ${profile.rate} writes/s) for ` +
          `${durationSec} s on ${target.endpoints.join(', ')}, keys under ${prefix}`,
      );
      const sigint = cancelOnSigint(ctx, prefix);
      let result;
      try {
        result = await runPerfCheck({
          endpoints: target.endpoints,
          ...(target.tls ? { tls: target.tls } : {}),
          load,
          durationSec,
          prefix,
          signal: sigint.signal,
          onProgress: (p) => ctx.io.err(progressLine(p)),
          onPhase: (phase) => {
            if (phase === 'cleaning' && !sigint.signal.aborted)
              ctx.io.err(`Deleting the keys under ${prefix}...`);
          },
        });
      } finally {
        sigint.dispose();
      }
      const recovery: NoSpaceRecovery = await recoverFromNoSpace({
        endpoints: target.endpoints,
        ...(target.tls ? { tls: target.tls } : {}),
        prefix,
        quotaBytes: pre.quotaBytes,
      });
      for (const step of recovery.steps) ctx.io.err(`NOSPACE: ${step}`);
      if (!result.cleanedUp && !recovery.raised)
        ctx.io.err(
          `warning: the keys under ${prefix} could not be deleted (${result.cleanupError ?? 'unknown error'}): ` +
            `delete them with etcdctl del --prefix ${prefix}`,
        );

      const lines: string[] = [];
      let maintenance: CompactDefragResult | undefined;
      const compact = v['auto-compact'] === true;
      const defrag = v['auto-defrag'] === true;
      if ((compact || defrag) && result.deleteRevision !== undefined) {
        maintenance = await compactAndDefrag(target.endpoints, target.tls, result.deleteRevision, {
          compact,
          defrag,
        });
        if (compact) {
          lines.push(`Compacting with revision ${maintenance.revision}`);
          if (maintenance.compacted) lines.push(`Compacted with revision ${maintenance.revision}`);
          else ctx.io.err(`compaction failed: ${maintenance.compactError ?? 'unknown error'}`);
        }
        for (const d of maintenance.defragmented) {
          lines.push(`Defragmenting "${d.endpoint}"`);
          if (d.ok) lines.push(`Defragmented "${d.endpoint}"`);
          else ctx.io.err(`defragmentation of ${d.endpoint} failed: ${d.error ?? 'unknown error'}`);
        }
      }
      const report = v['report'];
      if (typeof report === 'string') {
        const file = resolve(ctx.io.cwd, report);
        await writeFile(file, formatPerfReport(result));
        ctx.io.err(`Wrote the report to ${file}`);
      }
      if (ctx.global.json)
        json(ctx, {
          ...result,
          ...(maintenance ? { maintenance } : {}),
          ...(recovery.raised ? { noSpace: recovery } : {}),
        });
      else for (const line of [...lines, ...result.lines]) ctx.io.out(line);
      if (!recovery.raised && result.deleteRevision !== undefined && !spaceReclaimed(maintenance)) {
        const space = await dbSpace(target.endpoints, {
          timeoutMs: target.timeoutMs ?? 10_000,
          ...(target.tls ? { tls: target.tls } : {}),
        });
        const inventory = ctx.global.inventory;
        for (const line of reclaimAdvice({
          revision: result.deleteRevision,
          space: space.dbBytes > 0 ? space : undefined,
          maintenance,
          target:
            target.cluster && !(target.tls && 'ca' in target.tls)
              ? {
                  cluster: target.cluster.name,
                  ...(inventory !== resolve(ctx.io.cwd, INVENTORY_FILE_NAME) ? { inventory } : {}),
                }
              : { endpoints: target.endpoints, ...(target.tls ? { tls: target.tls } : {}) },
          auto: compact && defrag,
        }))
          ctx.io.err(line);
      }
      if (result.cancelled) {
        ctx.io.err(
          result.cleanedUp
            ? `Cancelled; the keys under ${prefix} were deleted.`
            : 'Cancelled before the end.',
        );
        return 130;
      }
      return result.pass && !recovery.raised ? 0 : 1;
    },
  },
];
