/**
 * Runs host plans: per host, a dry run of its script first (only reads the host), then, unless
 * this is a preview or nothing would change, the payloads for the steps that would change are
 * staged and the script runs for real. Hosts run in parallel; one host's failure never stops
 * the others. Output streams line by line with the host's name, and every step's outcome is
 * reported as it happens.
 */
import { CancelledError, K3sEtcdError, errorMessage, isCancelled, type ErrorCode } from '../errors';
import type { ExecOptions, ExecResult } from '../ssh/types';
import { shellQuote } from '../ssh/quote';
import { parseMarker, renderScript } from './render';
import type { HostPlan, StepStatus } from './steps';

/** What a runner needs from a host: the SSH session, or a local shell in tests and tools. */
export interface HostTransport {
  readonly label: string;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  put(remotePath: string, source: { localPath: string } | { data: Buffer }): Promise<void>;
  close(): void;
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

/** Runs one host's plan on an open transport. */
export async function runHostPlan(
  t: HostTransport,
  plan: HostPlan,
  opts: { dryRun: boolean } & RunHooks,
  timings: Record<string, number> = {},
): Promise<HostRun> {
  const script = renderScript(plan);
  let t0 = performance.now();
  const check = await runScript(t, plan, script, { dryRun: true, stage: '' }, opts);
  timings['check'] = performance.now() - t0;
  if (check.code !== 0) {
    return {
      host: plan.host,
      script,
      status: 'failed',
      steps: check.steps,
      error: failure(plan, check, 'check'),
      timings,
    };
  }
  const pending = new Set(
    check.steps.filter((s) => s.status === 'would-change').map((s) => plan.steps[s.n - 1]?.id),
  );
  if (opts.dryRun || pending.size === 0) {
    return {
      host: plan.host,
      script,
      status: pending.size === 0 ? 'unchanged' : 'would-change',
      steps: check.steps,
      timings,
    };
  }

  t0 = performance.now();
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
      await t.put(
        `${stage}/${p.name}`,
        p.localPath ? { localPath: p.localPath } : { data: p.content ?? Buffer.alloc(0) },
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
        let t0 = performance.now();
        t = await job.open(opts.signal);
        timings['connect'] = performance.now() - t0;
        t0 = performance.now();
        const plan = await job.plan(t, opts.signal);
        timings['plan'] = performance.now() - t0;
        return await runHostPlan(t, plan, opts, timings);
      } catch (err) {
        if (isCancelled(err) || opts.signal?.aborted) {
          opts.onLine?.(job.host, 'cancelled');
          return {
            host: job.host,
            status: 'cancelled',
            steps: [],
            error: { code: 'cancelled', message: `${job.host}: cancelled` },
            timings,
          };
        }
        const message = errorMessage(err);
        opts.onLine?.(job.host, `error: ${message}`);
        return {
          host: job.host,
          status: 'failed',
          steps: [],
          error: {
            ...(err instanceof K3sEtcdError ? { code: err.code } : {}),
            message: message.startsWith(job.host) ? message : `${job.host}: ${message}`,
          },
          timings,
        };
      } finally {
        t?.close();
      }
    }),
  );
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
