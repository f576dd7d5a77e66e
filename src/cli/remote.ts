/**
 * What every command that reaches hosts over SSH shares: the SSH options and help, the prompts
 * on the terminal, the `[host] line` printer, the step table and the dry-run gate.
 */
import { renderColumns } from '../core/format/table';
import type { SshContext } from '../core/ssh/hostSession';
import { summarizeRun, type HostRun } from '../core/plan/runner';
import { loadSshEnvironment } from '../core/ssh/target';
import { confirm, json, type Options, type RunContext } from './context';

export const SSH_OPTIONS: Options = {
  'accept-new-host-keys': { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
};

export const SSH_HELP = `SSH: keys from ssh-agent, the host's identityFile and ~/.ssh/config; passphrases, passwords
and sudo passwords are asked on the terminal one question at a time, never echoed and never
stored. Host keys are checked against your known_hosts (~/.ssh/known_hosts, or UserKnownHostsFile)
and the cluster's knownHostsFile, which may add hosts but never replace a key yours knows; an
unknown key is asked about (or accepted and recorded with --accept-new-host-keys), a changed key
is always refused.`;

export async function sshContext(ctx: RunContext): Promise<SshContext> {
  const acceptNew = ctx.values['accept-new-host-keys'] === true;
  return {
    env: await loadSshEnvironment(),
    prompts: {
      secret: async (req) => {
        if (!ctx.io.interactive) return undefined;
        return ctx.io.askSecret(`${req.attempt > 1 ? 'Wrong, try again. ' : ''}${req.prompt}: `);
      },
      unknownHostKey: async (k) => {
        const where = k.port === 22 ? k.host : `[${k.host}]:${k.port}`;
        const about = `The authenticity of host ${where} can't be established.\n${k.keyType} key fingerprint is ${k.fingerprint}.`;
        if (acceptNew) {
          ctx.io.err(
            `${about}\nAccepted (--accept-new-host-keys) and recorded in ${k.knownHostsFile}.`,
          );
          return true;
        }
        if (!ctx.io.interactive) return false;
        // One question with its fingerprint: questions wait their turn, so hosts connecting in
        // parallel never show one host's fingerprint above another host's question.
        const a = (
          await ctx.io.ask(`${about}\nTrust it and record it in ${k.knownHostsFile}? [y/N] `)
        ).trim();
        return /^y(es)?$/i.test(a);
      },
    },
  };
}

/** SIGINT cancels between steps (a host's running script always finishes); a second quits. */
export function cancelOnSigint(ctx: RunContext): { signal: AbortSignal; dispose(): void } {
  const abort = new AbortController();
  const onSigint = (): void => {
    if (abort.signal.aborted) process.exit(130);
    ctx.io.err('Cancelling after the current step (Ctrl+C again to quit at once)...');
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: abort.signal, dispose: () => process.off('SIGINT', onSigint) };
}

/** Streams lines as `[host] line`; whole lines only, so parallel hosts never interleave mid-line. */
export function printer(ctx: RunContext) {
  return (host: string, line: string) => {
    if (!ctx.global.json) ctx.io.out(`[${host}] ${line}`);
  };
}

export function stepTable(runs: HostRun[]): string {
  const rows = runs.flatMap((r) => r.steps.map((s) => [r.host, `${s.n}`, s.status, s.title]));
  return renderColumns(['HOST', 'STEP', 'STATUS', 'WHAT'], rows);
}

export function report(
  ctx: RunContext,
  runs: HostRun[],
  extra: Record<string, unknown> = {},
): number {
  const failed = runs.filter((r) => r.status === 'failed' || r.status === 'cancelled');
  if (ctx.global.json) json(ctx, { ...extra, hosts: runs });
  else {
    ctx.io.out('');
    for (const r of runs) ctx.io.out(summarizeRun(r));
  }
  return failed.length > 0 ? 1 : 0;
}

/**
 * After a dry run: shows what would change and asks. Returns the exit code when the run ends
 * here (--dry-run, a failed host, nothing to do, or "no"), undefined to go on and apply.
 */
export async function previewGate(
  ctx: RunContext,
  runs: HostRun[],
  words: {
    nothing: string;
    question: (changes: number, hosts: string[]) => string;
    /** Lines shown under the step table (the rolling order), if any. */
    notes?: string[];
    /** Fields added to the --json output (the rolling plan), if any. */
    json?: Record<string, unknown>;
  },
): Promise<number | undefined> {
  const notes = () => {
    if (!ctx.global.json) for (const l of words.notes ?? []) ctx.io.out(l);
  };
  if (
    ctx.values['dry-run'] === true ||
    runs.some((r) => r.status === 'failed' || r.status === 'cancelled')
  ) {
    if (!ctx.global.json) ctx.io.out(stepTable(runs));
    notes();
    return report(ctx, runs, { dryRun: true, ...words.json });
  }
  const pending = runs.filter((r) => r.status === 'would-change');
  if (pending.length === 0) {
    if (!ctx.global.json) ctx.io.out(words.nothing);
    return report(ctx, runs);
  }
  const changing = pending.map((r) => ({
    ...r,
    steps: r.steps.filter((s) => s.status === 'would-change'),
  }));
  if (!ctx.global.json) ctx.io.out(stepTable(changing));
  notes();
  const n = changing.reduce((a, r) => a + r.steps.length, 0);
  if (
    !(await confirm(
      ctx,
      words.question(
        n,
        pending.map((r) => r.host),
      ),
    ))
  ) {
    ctx.io.err('Nothing changed.');
    return 1;
  }
  return undefined;
}

/** A planned rollout of members, then K3s servers (`certs renew`, `certs rotate-ca`). */
interface Rollout {
  memberRuns: HostRun[];
  k3sRuns: HostRun[];
}

/**
 * Shows a planned rollout (the step table and its words; --dry-run or a refusal ends there),
 * asks, runs it with Ctrl+C as cancel and prints each host's outcome. Returns the exit code.
 */
export async function runRollout<R extends Rollout & { ok: boolean }>(
  ctx: RunContext,
  plan: Rollout & { refusal?: string },
  words: { lines: string[]; json: Record<string, unknown>; question: string },
  run: (hooks: { signal: AbortSignal; onLine: ReturnType<typeof printer> }) => Promise<R>,
  outcome: (result: R) => string[],
): Promise<number> {
  const runs = [...plan.memberRuns, ...plan.k3sRuns];
  if (ctx.values['dry-run'] === true || plan.refusal) {
    if (ctx.global.json) json(ctx, { dryRun: true, ...words.json, hosts: runs });
    else {
      ctx.io.out(stepTable(runs));
      for (const l of words.lines) ctx.io.out(l);
      if (plan.refusal) for (const r of runs) ctx.io.out(summarizeRun(r));
    }
    return plan.refusal ? 1 : 0;
  }
  if (!ctx.global.json) for (const l of words.lines) ctx.io.out(l);
  if (!(await confirm(ctx, words.question))) {
    ctx.io.err('Nothing changed.');
    return 1;
  }
  const cancel = cancelOnSigint(ctx);
  try {
    const result = await run({ signal: cancel.signal, onLine: printer(ctx) });
    if (ctx.global.json) json(ctx, result);
    else {
      ctx.io.out('');
      for (const r of [...result.memberRuns, ...result.k3sRuns]) ctx.io.out(summarizeRun(r));
      for (const l of outcome(result)) ctx.io.out(l);
    }
    return result.ok ? 0 : 1;
  } finally {
    cancel.dispose();
  }
}
