/**
 * Runs host plans: per host, a dry run of its script first (only reads the host), then, unless
 * this is a preview or nothing would change, the payloads for the steps that would change are
 * staged and the script runs for real. Hosts run in parallel; one host's failure never stops
 * the others. Output streams line by line with the host's name, and every step's outcome is
 * reported as it happens.
 */
import { CancelledError, K3sEtcdError, errorMessage, isCancelled, type ErrorCode } from '../errors';
import type { ExecOptions, ExecResult, TransferOptions } from '../ssh/types';
import { shellQuote } from '../ssh/quote';
import { parseMarker, renderScript } from './render';
import type { HostPlan, StepStatus } from './steps';

/** What a runner needs from a host: the SSH session, or a local shell in tests and tools. */
export interface HostTransport {
  readonly label: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  put(
    remotePath: string,
    source: { localPath: string } | { data: Buffer },
    opts?: TransferOptions,
  ): Promise<void>;
  close(): void;
}

/** A payload from this size up reports its upload every tenth (a snapshot, binaries). */
export const UPLOAD_PROGRESS_FROM_BYTES = 8 * 1024 * 1024;

/** `onBytes` that says `upload NAME: 40% (12 MB of 30 MB)` at each tenth of a large upload. */
export function uploadProgress(
  say: (line: string) => void,
  name: string,
): (sent: number, total: number) => void {
  let shown = 0;
  const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
  return (sent, total) => {
    if (total < UPLOAD_PROGRESS_FROM_BYTES) return;
    const tenth = Math.floor((sent / total) * 10);
    if (tenth <= shown) return;
    shown = tenth;
    say(`    upload ${name}: ${tenth * 10}% (${mb(sent)} of ${mb(total)})`);
  };
}

export interface StepOutcome {
  n: number;
  /** How many steps the host's plan has. */
  total: number;
  title: string;
  status: StepStatus | 'pending';
  detail?: string;
}

export type HostRunStatus = 'unchanged' | 'changed' | 'would-change' | 'failed' | 'cancelled';

export interface HostRun {
  host: string;
  status: HostRunStatus;
  steps: StepOutcome[];
  error?: { code?: ErrorCode; message: string; step?: string };
  /** The host's script as it ran (set once the host was planned; holds no private key). */
  script?: string;
  /** Milliseconds per phase: connect, plan (facts + planning), check (dry run), upload, apply. */
  timings: Record<string, number>;
}

export interface RunHooks {
  signal?: AbortSignal;
  /** One line of output (markers included), without its newline. */
  onLine?(host: string, line: string): void;
  /** A step started or finished. */
  onStep?(host: string, step: StepOutcome): void;
}

/** Splits streamed chunks into lines. */
function lineSplitter(emit: (line: string) => void): { push(chunk: string): void; end(): void } {
  let rest = '';
  return {
    push(chunk) {
      rest += chunk;
      let i: number;
      while ((i = rest.indexOf('\n')) >= 0) {
        emit(rest.slice(0, i).replace(/\r$/, ''));
        rest = rest.slice(i + 1);
      }
    },
    end() {
      if (rest) emit(rest);
      rest = '';
    },
  };
}

interface ScriptResult {
  code: number;
  steps: StepOutcome[];
  stderrTail: string;
}

async function runScript(
  t: HostTransport,
  plan: HostPlan,
  script: string,
  env: { dryRun: boolean; stage: string },
  hooks: RunHooks,
): Promise<ScriptResult> {
  const steps: StepOutcome[] = plan.steps.map((s, i) => ({
    n: i + 1,
    total: plan.steps.length,
    title: s.title,
    status: 'pending',
  }));
  const onLine = (line: string) => {
    hooks.onLine?.(plan.host, line);
    const m = parseMarker(line);
    const step = m ? steps[m.n - 1] : undefined;
    if (!m || !step) return;
    if (m.status) {
      step.status = m.status;
      if (m.detail) step.detail = m.detail;
    }
    hooks.onStep?.(plan.host, { ...step });
  };
  const out = lineSplitter(onLine);
  const err = lineSplitter(onLine);
  const r = await t.exec(`DRY_RUN=${env.dryRun ? 1 : 0} STAGE=${shellQuote(env.stage)} sh -s`, {
    sudo: true,
    stdin: script,
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
    ...(hooks.signal ? { signal: hooks.signal } : {}),
  });
  out.end();
  err.end();
  return { code: r.code, steps, stderrTail: r.stderr.trim().split('\n').slice(-5).join('\n') };
}

function failure(plan: HostPlan, r: ScriptResult, phase: string): NonNullable<HostRun['error']> {
  const failed = r.steps.find((s) => s.status === 'failed');
  if (failed) {
    return {
      code: 'provision-step-failed',
      step: failed.title,
      message: `${plan.host}, step ${failed.n} "${failed.title}": ${failed.detail ?? 'failed'}`,
    };
  }
  return {
    code: 'provision-step-failed',
    message: `${plan.host}: the ${phase} script stopped with exit ${r.code}${r.stderrTail ? `: ${r.stderrTail}` : ''}`,
  };
}

/** A host's plan after its dry run: what would change, and the script to apply it with. */
export interface CheckedPlan {
  plan: HostPlan;
  script: string;
  /** The dry run's outcome: would-change, unchanged or failed. */
  run: HostRun;
  /** Ids of the steps that would change. */
  pending: Set<string | undefined>;
}

/** The dry run of one host's plan (only reads the host). */
export async function checkHostPlan(
  t: HostTransport,
  plan: HostPlan,
  opts: RunHooks,
  timings: Record<string, number> = {},
): Promise<CheckedPlan> {
  const script = renderScript(plan);
  const t0 = performance.now();
  const check = await runScript(t, plan, script, { dryRun: true, stage: '' }, opts);
  timings['check'] = performance.now() - t0;
  const base = { host: plan.host, script, steps: check.steps, timings };
  if (check.code !== 0) {
    return {
      plan,
      script,
      pending: new Set(),
      run: { ...base, status: 'failed', error: failure(plan, check, 'check') },
    };
  }
  const pending = new Set(
    check.steps.filter((s) => s.status === 'would-change').map((s) => plan.steps[s.n - 1]?.id),
  );
  return {
    plan,
    script,
    pending,
    run: { ...base, status: pending.size === 0 ? 'unchanged' : 'would-change' },
  };
}

/** Applies a checked plan: stages the payloads of the steps that would change, runs the script. */
export async function applyHostPlan(
  t: HostTransport,
  checked: CheckedPlan,
  opts: RunHooks,
): Promise<HostRun> {
  const { plan, script, pending } = checked;
  const timings = checked.run.timings;
  if (checked.run.status !== 'would-change') return checked.run;
  let t0 = performance.now();
  const mk = await t.exec(
    'mktemp -d /tmp/.k3s-etcd-stage-XXXXXX',
    opts.signal ? { signal: opts.signal } : {},
  );
  const stage = mk.stdout.trim();
  // The host's answer goes into the script's environment and an rm -rf: only mktemp's shape.
  if (mk.code !== 0 || !/^\/tmp\/\.k3s-etcd-stage-[A-Za-z0-9]{6,}$/.test(stage)) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${plan.host}: cannot make a staging folder in /tmp: ${mk.stderr.trim()}`,
    );
  }
  try {
    for (const p of plan.payloads) {
      if (!pending.has(p.step)) continue;
      if (opts.signal?.aborted) throw new CancelledError('Provisioning');
      opts.onLine?.(plan.host, `    upload ${p.name}${p.localPath ? ` (${p.localPath})` : ''}`);
      // A large upload says how far it is and stops mid-way on cancel.
      await t.put(
        `${stage}/${p.name}`,
        p.localPath ? { localPath: p.localPath } : { data: p.content ?? Buffer.alloc(0) },
        {
          ...(opts.signal ? { signal: opts.signal } : {}),
          onBytes: uploadProgress((line) => opts.onLine?.(plan.host, line), p.name),
        },
      );
    }
    timings['upload'] = performance.now() - t0;
    t0 = performance.now();
    const apply = await runScript(t, plan, script, { dryRun: false, stage }, opts);
    timings['apply'] = performance.now() - t0;
    if (apply.code !== 0) {
      return {
        host: plan.host,
        script,
        status: 'failed',
        steps: apply.steps,
        error: failure(plan, apply, 'apply'),
        timings,
      };
    }
    const changed = apply.steps.some((s) => s.status === 'changed');
    return {
      host: plan.host,
      script,
      status: changed ? 'changed' : 'unchanged',
      steps: apply.steps,
      timings,
    };
  } finally {
    await t.exec(`rm -rf ${shellQuote(stage)}`).catch(() => undefined);
  }
}

/** Runs one host's plan on an open transport: its dry run, then (unless a preview) the change. */
export async function runHostPlan(
  t: HostTransport,
  plan: HostPlan,
  opts: { dryRun: boolean } & RunHooks,
  timings: Record<string, number> = {},
): Promise<HostRun> {
  const checked = await checkHostPlan(t, plan, opts, timings);
  if (opts.dryRun) return checked.run;
  return applyHostPlan(t, checked, opts);
}

export interface HostJob {
  host: string;
  /** Opens the transport (SSH connect). */
  open(signal?: AbortSignal): Promise<HostTransport>;
  /** Gathers facts and builds the plan. */
  plan(t: HostTransport, signal?: AbortSignal): Promise<HostPlan>;
}

/**
 * Runs every job in parallel (each host ends with its own outcome), or with `sequential` one
 * host after another, stopping at the first that fails: the rest are reported as not started.
 */
export async function runJobs(
  jobs: HostJob[],
  opts: { dryRun: boolean; sequential?: boolean } & RunHooks,
): Promise<HostRun[]> {
  if (opts.sequential) {
    const runs: HostRun[] = [];
    for (const job of jobs) {
      const failed = runs.find((r) => r.status === 'failed' || r.status === 'cancelled');
      if (failed) {
        const message = `${job.host}: not started: ${failed.host} ${failed.status} first (one host at a time)`;
        opts.onLine?.(job.host, message);
        runs.push({
          host: job.host,
          status: failed.status,
          steps: [],
          error: { message },
          timings: {},
        });
        continue;
      }
      runs.push(...(await runJobs([job], { ...opts, sequential: false })));
    }
    return runs;
  }
  return Promise.all(
    jobs.map(async (job): Promise<HostRun> => {
      const timings: Record<string, number> = {};
      let t: HostTransport | undefined;
      try {
        return await asHostRun(job.host, opts, timings, async () => {
          const opened = await openAndPlan(job, opts, timings);
          t = opened.t;
          return runHostPlan(t, opened.plan, opts, timings);
        });
      } finally {
        t?.close();
      }
    }),
  );
}

/** Opens a job's transport and builds its plan, timing both. */
export async function openAndPlan(
  job: HostJob,
  opts: RunHooks,
  timings: Record<string, number>,
): Promise<{ t: HostTransport; plan: HostPlan }> {
  let t0 = performance.now();
  const t = await job.open(opts.signal);
  timings['connect'] = performance.now() - t0;
  try {
    t0 = performance.now();
    const plan = await job.plan(t, opts.signal);
    timings['plan'] = performance.now() - t0;
    return { t, plan };
  } catch (err) {
    t.close();
    throw err;
  }
}

/** Runs `fn`; a cancel or an error becomes the host's cancelled or failed run, named after it. */
export async function asHostRun(
  host: string,
  opts: RunHooks,
  timings: Record<string, number>,
  fn: () => Promise<HostRun>,
): Promise<HostRun> {
  try {
    return await fn();
  } catch (err) {
    if (isCancelled(err) || opts.signal?.aborted) {
      opts.onLine?.(host, 'cancelled');
      return {
        host,
        status: 'cancelled',
        steps: [],
        error: { code: 'cancelled', message: `${host}: cancelled` },
        timings,
      };
    }
    const message = errorMessage(err);
    opts.onLine?.(host, `error: ${message}`);
    return {
      host,
      status: 'failed',
      steps: [],
      error: {
        ...(err instanceof K3sEtcdError ? { code: err.code } : {}),
        message: message.startsWith(host) ? message : `${host}: ${message}`,
      },
      timings,
    };
  }
}

/**
 * One line per host for summaries: "edge-1: changed (7 of 21 steps)"; a dry run's check that
 * does not pass on a host where nothing changes is counted ("1 check does not pass").
 */
export function summarizeRun(run: HostRun): string {
  const changed = run.steps.filter(
    (s) => s.status === 'changed' || s.status === 'would-change',
  ).length;
  const failing = run.steps.filter((s) => s.status === 'failed').length;
  const also = failing ? `; ${failing} check${failing > 1 ? 's do' : ' does'} not pass` : '';
  switch (run.status) {
    case 'failed':
    case 'cancelled':
      return run.error?.message ?? `${run.host}: ${run.status}`;
    case 'unchanged':
      return `${run.host}: unchanged (${run.steps.length} steps checked${also})`;
    default:
      return `${run.host}: ${run.status} (${changed} of ${run.steps.length} steps${also})`;
  }
}
