/**
 * `etcdctl check perf`, for the extension and the CLI: profiles s/m/l/xl, the same workload and
 * the same verdict lines, live per-second progress, and the prefix always deleted afterwards.
 *
 * The load runs in a worker thread (worker.ts), so the caller's event loop (the extension
 * host) stays responsive even at xl. This module does not load etcd3 unless compactAndDefrag
 * is called (its reads and deletes go through etcd/rpc.ts).
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { K3sEtcdError, throwIfAborted, type ErrorCode } from '../errors';
import { createEndpointClient, type EtcdTls } from '../etcd/client';
import { openRpcs } from '../etcd/rpc';
import { prefixRangeEnd } from './connections';
import type { PerfEngineConfig } from './config';
import { DEFAULT_PERF_DURATION_SEC, DEFAULT_PERF_PREFIX, isPerfLoad, PERF_LOADS } from './stats';
import { type PerfLoad, type PerfProgress, type PerfResult } from '../../shared/perfTypes';
import type { PerfWorkerCommand, PerfWorkerMessage } from './worker';
import { classifyEtcdError } from '../etcd/problems';
import { rollingDefrag } from '../rolling/defrag';
import { liveCluster } from '../rolling/live';

export {
  DEFAULT_PERF_DURATION_SEC,
  DEFAULT_PERF_PREFIX,
  isPerfLoad,
  PERF_CRITERIA,
  PERF_LOADS,
  PERF_PROFILES,
  perfVerdict,
} from './stats';
export type { PerfLoad, PerfProgress, PerfResult, PerfSecond } from '../../shared/perfTypes';
export type { PerfProfile } from './stats';

export type PerfErrorReason =
  | 'prefix-not-empty'
  | 'unreachable'
  | 'invalid-options'
  /** A client TLS file cannot be read (code `certs-missing`, like connectionFor). */
  | 'tls-files-missing'
  | 'failed'
  /** The preflight refused: an alarm, or the load would take the database too near its quota. */
  | 'unsafe';

/** Why a check did not run or did not finish; `reason` says which. */
export class PerfError extends K3sEtcdError {
  constructor(
    readonly reason: PerfErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    const codes: Record<PerfErrorReason, ErrorCode> = {
      'prefix-not-empty': 'usage',
      'invalid-options': 'usage',
      unsafe: 'usage',
      'tls-files-missing': 'certs-missing',
      unreachable: 'etcd-unreachable',
      failed: 'etcd-unreachable',
    };
    super(codes[reason], message, options);
    this.name = 'PerfError';
  }
}

export type PerfPhase = 'writing' | 'cleaning';

export interface PerfCheckOptions {
  endpoints: string[];
  tls?: EtcdTls;
  load: PerfLoad;
  /** Default 60, as etcdctl. */
  durationSec?: number;
  /** Default `/etcdctl-check-perf/`, as etcdctl. */
  prefix?: string;
  /** Stops the load; the prefix is still deleted, and the result says `cancelled`. */
  signal?: AbortSignal;
  /** Once a second, with that second's writes and latencies. */
  onProgress?: (p: PerfProgress) => void;
  /** 'writing' after the prefix check passed, 'cleaning' when the load is over. */
  onPhase?: (phase: PerfPhase) => void;
  /** Advanced: gRPC connections per endpoint (see connections.ts). */
  connectionsPerEndpoint?: number;
}

/** After a cancel, how long the worker gets to stop and clean up before it is terminated. */
const CANCEL_GRACE_MS = 45_000;

/**
 * Runs the check. Resolves with the result (also when cancelled: `cancelled: true`, and the
 * prefix deleted); rejects with a PerfError when the prefix already holds keys, no endpoint
 * answers, or the worker fails, and with CancelledError when cancelled before it started.
 */
export async function runPerfCheck(opts: PerfCheckOptions): Promise<PerfResult> {
  const config = engineConfig(opts);
  throwIfAborted(opts.signal, 'Performance check');
  const worker = startWorker(config);
  return new Promise<PerfResult>((resolve, reject) => {
    let started = false;
    let over = false;
    let graceTimer: NodeJS.Timeout | undefined;

    const finish = (settle: () => void): void => {
      if (over) return;
      over = true;
      clearTimeout(graceTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      void worker.terminate();
      settle();
    };
    /** The worker is gone without an answer: delete the prefix from here if it wrote. */
    const failed = (why: string, cause?: unknown, reason: PerfErrorReason = 'failed'): void => {
      if (over) return;
      finish(() => undefined);
      void (async () => {
        if (!started) {
          reject(new PerfError(reason, `The performance check failed: ${why}`, { cause }));
          return;
        }
        const clean = await deletePrefixFromHere(config);
        const after = clean.ok
          ? `Its keys under ${config.prefix} were deleted.`
          : `Its keys under ${config.prefix} could not be deleted (${clean.error}): delete them with etcdctl del --prefix ${config.prefix}`;
        reject(
          new PerfError('failed', `The performance check failed: ${why}. ${after}`, { cause }),
        );
      })();
    };
    const onAbort = (): void => {
      worker.postMessage({ type: 'cancel' } satisfies PerfWorkerCommand);
      graceTimer = setTimeout(
        () => failed(`it did not stop within ${CANCEL_GRACE_MS / 1000} s of the cancel`),
        CANCEL_GRACE_MS,
      );
    };

    worker.on('message', (m: PerfWorkerMessage) => {
      if (over) return;
      switch (m.type) {
        case 'started':
          started = true;
          safely(() => opts.onPhase?.('writing'));
          return;
        case 'progress':
          safely(() => opts.onProgress?.(m.progress));
          return;
        case 'cleaning':
          safely(() => opts.onPhase?.('cleaning'));
          return;
        case 'failed': {
          const f = describeFailure(m.message, config);
          failed(f.message, undefined, f.reason);
          return;
        }
        case 'outcome': {
          const o = m.outcome;
          if (o.kind === 'done') finish(() => resolve(o.result));
          else if (o.kind === 'refused')
            finish(() => reject(new PerfError('prefix-not-empty', o.message)));
          else finish(() => reject(new PerfError('unreachable', o.message)));
          return;
        }
      }
    });
    worker.on('error', (err) => failed(err.message, err));
    worker.on('exit', (code) => failed(`its worker exited (code ${code})`));
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function safely(f: () => void): void {
  try {
    f();
  } catch {
    // a failing progress callback must not stop the check
  }
}

function describeFailure(
  message: string,
  config: PerfEngineConfig,
): { message: string; reason: PerfErrorReason } {
  // Most failures before the load are unreadable TLS files; word them like the other commands.
  const p = classifyEtcdError(new Error(message), config.endpoints[0] ?? '', config.tls);
  return p.code === 'missing-file'
    ? { message: `${p.summary}. ${p.hint}`, reason: 'tls-files-missing' }
    : { message, reason: 'failed' };
}

function engineConfig(opts: PerfCheckOptions): PerfEngineConfig {
  if (!isPerfLoad(opts.load))
    throw new PerfError(
      'invalid-options',
      `Unknown load "${String(opts.load)}" (one of: ${PERF_LOADS.join(', ')}).`,
    );
  const durationSec = opts.durationSec ?? DEFAULT_PERF_DURATION_SEC;
  if (!Number.isFinite(durationSec) || durationSec <= 0 || durationSec > 3600)
    throw new PerfError(
      'invalid-options',
      `The duration must be a number of seconds above 0 and at most 3600 (got ${durationSec}).`,
    );
  const endpoints = opts.endpoints.filter((e) => e.trim() !== '');
  if (endpoints.length === 0) throw new PerfError('invalid-options', 'No etcd endpoints to load.');
  const prefix = opts.prefix ?? DEFAULT_PERF_PREFIX;
  if (prefix === '')
    throw new PerfError(
      'invalid-options',
      'The prefix must not be empty: it is deleted afterwards.',
    );
  const config: PerfEngineConfig = {
    endpoints,
    load: opts.load,
    durationMs: Math.round(durationSec * 1000),
    prefix,
  };
  if (opts.tls) config.tls = opts.tls;
  if (opts.connectionsPerEndpoint !== undefined)
    config.connectionsPerEndpoint = opts.connectionsPerEndpoint;
  return config;
}

/**
 * The worker file sits next to this module: dist/perfWorker.js next to dist/extension.js and
 * dist/cli.js in the bundles; worker.ts next to perf.ts when running from source under tsx,
 * where a small CommonJS bootstrap registers tsx in the worker first (a worker cannot load a
 * .ts entry by itself).
 */
function startWorker(config: PerfEngineConfig): Worker {
  const options = { workerData: config, execArgv: [] as string[] };
  if (!__filename.endsWith('.ts')) return new Worker(join(__dirname, 'perfWorker.js'), options);
  const tsxApi = 'tsx/cjs/api'; // a variable: bundlers must not follow it
  const bootstrap =
    `require(${JSON.stringify(require.resolve(tsxApi))}).register();\n` +
    `require(${JSON.stringify(join(__dirname, 'worker.ts'))});`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** The parent's own clean-up, when the worker died after it began to write. */
async function deletePrefixFromHere(
  config: PerfEngineConfig,
): Promise<{ ok: true; revision: string } | { ok: false; error: string }> {
  let error = 'no endpoint answered';
  const prefix = Buffer.from(config.prefix);
  let clients: Awaited<ReturnType<typeof openRpcs>> = [];
  try {
    clients = await openRpcs(config.endpoints, {
      timeoutMs: 30_000,
      ...(config.tls ? { tls: config.tls } : {}),
    });
    for (const [i, client] of clients.entries()) {
      try {
        const res = await client.deleteRange(prefix, prefixRangeEnd(prefix));
        return { ok: true, revision: res.revision };
      } catch (err) {
        error = `${config.endpoints[i]}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  } finally {
    for (const c of clients) c.close();
  }
  return { ok: false, error };
}

// ---- after the check ------------------------------------------------------------------------

export interface CompactDefragOptions {
  /** Default true (etcdctl's --auto-compact). */
  compact?: boolean;
  /** Default true (etcdctl's --auto-defrag). */
  defrag?: boolean;
  signal?: AbortSignal;
  /** Per request; default 30 s, as etcdctl. */
  timeoutMs?: number;
}

export interface CompactDefragResult {
  revision: string;
  /** False also when not asked for. */
  compacted: boolean;
  compactError?: string;
  defragmented: Array<{ endpoint: string; ok: boolean; error?: string; durationMs: number }>;
}

/**
 * etcdctl's `--auto-compact` and `--auto-defrag`: compact at the clean-up delete's revision
 * (physical), then defragment the endpoints' members with the rolling defragmentation (one at a
 * time, followers first, the leader last after a hand-over, each caught up before the next, a
 * deadline sized to its database); a member that does not answer is reported failed. The
 * check's writes stay in the database until both are done.
 */
async function defragEndpoints(
  endpoints: readonly string[],
  tls: EtcdTls | undefined,
  signal: AbortSignal | undefined,
): Promise<CompactDefragResult['defragmented']> {
  const live = liveCluster({ endpoints: [...endpoints], ...(tls ? { tls } : {}) }, 2000, true);
  let table;
  try {
    table = await live.probe(signal);
  } catch (err) {
    const error = classifyEtcdError(err, endpoints[0] ?? '', tls).summary;
    return endpoints.map((endpoint) => ({ endpoint, ok: false, error, durationMs: 0 }));
  }
  const nameOf = (e: string) => table.find((r) => r.endpoint === e)?.name;
  const run = await rollingDefrag({
    live,
    ...(tls ? { tls } : {}),
    members: endpoints.map(nameOf).filter((n): n is string => n !== undefined),
    rescue: true,
    ...(signal ? { signal } : {}),
  });
  // In the order they ran (followers first, the leader last), then those that did not.
  const ran = (e: string) => run.steps.findIndex((s) => s.endpoint === e || s.member === nameOf(e));
  const order = [...endpoints].sort(
    (a, b) => (ran(a) < 0 ? Infinity : ran(a)) - (ran(b) < 0 ? Infinity : ran(b)),
  );
  return order.map((endpoint) => {
    const step = run.steps[ran(endpoint)];
    if (step)
      return {
        endpoint,
        ok: step.ok,
        ...(step.error ? { error: step.error } : {}),
        durationMs: step.durationMs,
      };
    const skipped = run.skipped.find((s) => s.member === nameOf(endpoint));
    return {
      endpoint,
      ok: false,
      error: skipped?.why ?? run.stopped ?? 'not a member of the cluster',
      durationMs: 0,
    };
  });
}

export async function compactAndDefrag(
  endpoints: readonly string[],
  tls: EtcdTls | undefined,
  revision: string,
  opts: CompactDefragOptions = {},
): Promise<CompactDefragResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const clientOpts = { timeoutMs, ...(tls ? { tls } : {}) };
  const result: CompactDefragResult = { revision, compacted: false, defragmented: [] };
  for (const endpoint of opts.compact === false ? [] : endpoints) {
    throwIfAborted(opts.signal, 'Compaction');
    const client = await createEndpointClient(endpoint, clientOpts);
    try {
      await client.kv.compact({ revision, physical: true });
      result.compacted = true;
      delete result.compactError;
      break;
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      if (/required revision has been compacted/.test(text)) {
        result.compacted = true; // already compacted at or past it
        delete result.compactError;
        break;
      }
      result.compactError = `${endpoint}: ${text}`;
    } finally {
      client.close();
    }
  }
  if (opts.defrag === false) return result;
  throwIfAborted(opts.signal, 'Defragmentation');
  result.defragmented = await defragEndpoints(endpoints, tls, opts.signal);
  return result;
}
