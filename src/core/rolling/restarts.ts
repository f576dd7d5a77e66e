/**
 * Which hosts a plan restarts, and why, read from the dry run of each host's plan: a service
 * step that would change restarts (or starts) its unit, because of the steps it restarts on that
 * would change. And the rolling plan as both front ends show it: which members restart, in what
 * order, and why (worded once here).
 */
import type { StepOutcome } from '../plan/runner';
import type { HostPlan, ServiceStep } from '../plan/steps';

/** What a host's plan does to its service. */
export interface RestartReason {
  host: string;
  unit: string;
  /** 'restart': a file it runs on changes; 'start': it is not running (or not enabled) yet. */
  kind: 'restart' | 'start';
  /** The titles of the steps that would change and that the service restarts on. */
  why: string[];
}

/** The service step of a plan that restarts on changes (the member's etcd). */
export function serviceStep(plan: HostPlan): ServiceStep | undefined {
  return plan.steps.find((s): s is ServiceStep => s.kind === 'service' && s.restartOn.length > 0);
}

/** The files a plan's service restarts on: paths of its file steps and of what its commands write. */
export function restartFiles(plan: HostPlan): string[] {
  const svc = serviceStep(plan);
  if (!svc) return [];
  const paths: string[] = [];
  for (const step of plan.steps) {
    if (!svc.restartOn.includes(step.id)) continue;
    if (step.kind === 'file') paths.push(step.path);
    if (step.kind === 'command') paths.push(...(step.writes ?? []));
  }
  return [...new Set(paths)];
}

/**
 * From a host's dry run (its step outcomes, in plan order): does its service restart, and why.
 * Undefined when the plan leaves the service as it is (nothing it runs on changes).
 */
export function restartReason(
  plan: HostPlan,
  steps: readonly StepOutcome[],
): RestartReason | undefined {
  const svc = serviceStep(plan);
  if (!svc) return undefined;
  const status = (id: string) => steps[plan.steps.findIndex((s) => s.id === id)]?.status;
  if (status(svc.id) !== 'would-change') return undefined;
  const why = plan.steps
    .filter((s) => svc.restartOn.includes(s.id) && status(s.id) === 'would-change')
    .map((s) => s.title);
  return { host: plan.host, unit: svc.unit, kind: why.length > 0 ? 'restart' : 'start', why };
}

/** A rolling change as planned: who restarts, in what order, and who only gets files. */
export interface RollingPlan {
  /** 'rolling': a live cluster, one member at a time; 'together': no member answers (a new cluster). */
  mode: 'rolling' | 'together';
  /** In order; `role` as the member table showed it when planned. */
  order: Array<RestartReason & { member: string; role: 'leader' | 'follower' | 'down' }>;
  /** Hosts whose changes do not restart etcd (they are applied first, together). */
  filesOnly: string[];
  /** Why the rollout would be refused right now (another voter down), if it would. */
  refusal?: string;
  /** What the rollout costs anyway (2 voters: each restart loses quorum briefly), if anything. */
  warning?: string;
}

/** The rolling plan in words, one line each (the CLI prints them, the editor shows them). */
export function rollingPlanLines(plan: RollingPlan): string[] {
  if (plan.order.length === 0 && plan.filesOnly.length === 0) return [];
  const lines: string[] = [];
  if (plan.order.length > 0) {
    lines.push(
      plan.mode === 'rolling'
        ? `etcd restarts on ${plan.order.length} member(s), one at a time (each healthy and caught up before the next; the leader last, after handing its leadership to a follower):`
        : `etcd starts on ${plan.order.length} member(s) together (no member answers: a new cluster):`,
    );
    plan.order.forEach((r, i) => {
      const files = r.why.join(', ');
      const what =
        r.kind === 'start'
          ? 'starts (it is not running)'
          : plan.mode === 'together' || r.role === 'down'
            ? `starts with ${files}`
            : `restarts for ${files}`;
      const role = plan.mode === 'rolling' ? ` (${r.role})` : '';
      lines.push(
        `  ${i + 1}. ${r.member}${r.member === r.host ? '' : ` on ${r.host}`}${role}: ${what}`,
      );
    });
  }
  if (plan.filesOnly.length > 0)
    lines.push(`no restart on ${plan.filesOnly.join(', ')}: only files change there`);
  if (plan.warning) lines.push(`warning: ${plan.warning}`);
  if (plan.refusal) lines.push(`refused as things stand: ${plan.refusal}`);
  return lines;
}
