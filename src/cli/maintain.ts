/**
 * `k3s-etcd maintain`: compaction when needed, then defragmentation one member at a time
 * (followers first, the leader last), alarms disarmed only with headroom, and a report next to
 * the inventory. `--rescue` is the NOSPACE rescue: what fills the space, compaction,
 * defragmentation of every member that answers, a larger quota when it must (asked, then applied
 * with `provision etcd`'s rolling restart), disarm, and a write that proves it.
 */
import { dirname } from 'node:path';
import { humanBytes } from '../shared/etcdTypes';
import { setEtcdQuota } from '../core/inventory/edit';
import { metricsTargets } from '../core/etcd/scrape';
import {
  planMaintenance,
  runMaintenance,
  settleAlarms,
  type MaintainOptions,
  type MaintenanceReport,
} from '../core/maintain/maintain';
import { renderPlan, writeReport } from '../core/maintain/report';
import { surveyCluster } from '../core/maintain/survey';
import { seconds } from '../core/rolling/defrag';
import { inventorySize, parseSize, ruleFrom, type DefragRule } from '../core/maintain/rule';
import { installMaintainTimer, HOST_REPORTS_DIR } from '../core/maintain/timer';
import { selectHosts } from '../core/inventory/select';
import {
  confirm,
  json,
  loadValid,
  selectCluster,
  UsageError,
  type Options,
  type RunContext,
  type Subcommand,
} from './context';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, etcdTarget } from './etcdTarget';
import { PROVISION_COMMANDS } from './provision';
import { previewGate, printer, report, SSH_OPTIONS, sshContext } from './remote';

const MAINTAIN_OPTIONS: Options = {
  ...ENDPOINT_OPTIONS,
  ...SSH_OPTIONS,
  rescue: { type: 'boolean', default: false },
  'free-share': { type: 'string' },
  'min-size': { type: 'string' },
  'quota-share': { type: 'string' },
  'recent-revisions': { type: 'string' },
  'raise-quota': { type: 'string' },
  'install-timer': { type: 'boolean', default: false },
  'remove-timer': { type: 'boolean', default: false },
  'on-calendar': { type: 'string' },
  host: { type: 'string', multiple: true },
};

const num = (v: unknown) => (typeof v === 'string' ? Number(v) : undefined);

/** The rule from the flags (each optional; the defaults otherwise). */
export function ruleFromFlags(ctx: RunContext): DefragRule {
  const v = ctx.values;
  const minSize = typeof v['min-size'] === 'string' ? parseSize(v['min-size']) : undefined;
  const rule = ruleFrom({
    ...(num(v['free-share']) !== undefined ? { freeShare: num(v['free-share'])! } : {}),
    ...(minSize !== undefined ? { minDbBytes: minSize } : {}),
    ...(num(v['quota-share']) !== undefined ? { quotaShare: num(v['quota-share'])! } : {}),
    ...(num(v['recent-revisions']) !== undefined
      ? { recentRevisions: num(v['recent-revisions'])! }
      : {}),
  });
  if (typeof rule === 'string') throw new UsageError(rule);
  return rule;
}

/**
 * The rescue's larger quota: etcd.quotaBackendBytes edited in the inventory and applied with
 * `provision etcd` (its preview and question, one member at a time); then the alarms again.
 */
async function raiseQuota(
  ctx: RunContext,
  opts: MaintainOptions,
  report: MaintenanceReport,
  size: string,
): Promise<MaintenanceReport> {
  const bytes = parseSize(size);
  if (!Number.isFinite(bytes) || bytes <= 0)
    throw new UsageError('--raise-quota is a size such as 4GiB or 512MiB');
  const value = inventorySize(bytes);
  if (
    !(await confirm(
      ctx,
      `Set etcd.quotaBackendBytes of ${opts.cluster} to ${value} in ${ctx.global.inventory} and restart each member on it (provision etcd, one at a time)?`,
    ))
  ) {
    ctx.io.err('The quota was left as it is.');
    return report;
  }
  const old = await setEtcdQuota(ctx.global.inventory, opts.cluster, value);
  ctx.io.err(
    `etcd.quotaBackendBytes: ${old ?? "etcd's default"} → ${value} in ${ctx.global.inventory}`,
  );
  const provision = PROVISION_COMMANDS.find((c) => c.name === 'provision etcd')!;
  // Its exit code also says whether every member is healthy, which an armed NOSPACE denies:
  // what counts is the quota every member runs with now.
  await provision.run({ ...ctx, values: { ...ctx.values, host: undefined } });
  const lines = [...report.lines];
  const say = (l: string) => {
    lines.push(l);
    ctx.io.err(l);
  };
  const now = await surveyCluster({
    endpoints: opts.endpoints,
    ...(opts.tls ? { tls: opts.tls } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  const behind = now.members.filter((m) => m.quotaBytes !== bytes);
  if (behind.length > 0) {
    say(
      `etcd.quotaBackendBytes is ${value} in the inventory, but ${behind.map((m) => `${m.name} runs with ${humanBytes(m.quotaBytes)}`).join(', ')}: run \`k3s-etcd provision etcd\` again`,
    );
    return { ...report, lines, ok: false, finishedAt: new Date().toISOString() };
  }
  say(`etcd.quotaBackendBytes raised to ${value}: every member runs with it`);
  const settled = await settleAlarms(opts, say);
  const { quota: _done, ...rest } = report;
  return {
    ...rest,
    after: settled.after.members,
    alarms: {
      ...report.alarms,
      ...settled.alarms,
      disarmed: [...report.alarms.disarmed, ...settled.alarms.disarmed],
    },
    ...(settled.writeProbe ? { writeProbe: settled.writeProbe } : {}),
    ...(settled.quota ? { quota: settled.quota } : {}),
    lines,
    ok: !settled.alarms.kept && (settled.writeProbe?.ok ?? true),
    finishedAt: new Date().toISOString(),
  };
}

/**
 * `--install-timer` / `--remove-timer`: the timer's plan on every member host (or --host ones),
 * shown as a dry run and asked, like provisioning.
 */
async function timerCommand(ctx: RunContext, rule: DefragRule): Promise<number> {
  const remove = ctx.values['remove-timer'] === true;
  const onCalendar = ctx.values['on-calendar'];
  if (remove && typeof onCalendar === 'string')
    throw new UsageError('--on-calendar goes with --install-timer');
  const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
  const hosts = selectHosts(
    cluster,
    (ctx.values['host'] as unknown as string[] | undefined) ?? [],
  ).map((h) => h.name);
  const ssh = await sshContext(ctx);
  const opts = {
    ssh,
    hosts,
    rule,
    remove,
    ...(typeof onCalendar === 'string' ? { onCalendar } : {}),
  };
  const preview = await installMaintainTimer(cluster, { ...opts, dryRun: true });
  const gate = await previewGate(ctx, preview, {
    nothing: remove
      ? `No maintenance timer on ${preview.length} host(s): nothing to do.`
      : `The maintenance timer is in place on ${preview.length} host(s): nothing to do.`,
    question: (n, pending) =>
      remove
        ? `Stop and remove the maintenance timer on ${pending.join(', ')} (its reports stay)?`
        : `Apply ${n} change(s) on ${pending.join(', ')} (a timer that maintains etcd ${typeof onCalendar === 'string' ? `at ${onCalendar}` : 'daily at 03:17'}; only the leader's host acts)?`,
  });
  if (gate !== undefined) return gate;
  const runs = await installMaintainTimer(cluster, {
    ...opts,
    dryRun: false,
    onLine: printer(ctx),
  });
  const code = report(ctx, runs);
  if (code === 0 && !ctx.global.json && !remove)
    ctx.io.out(
      `Each run leaves its report in ${HOST_REPORTS_DIR} on its host; the last one shows in \`k3s-etcd status\` and the tree's cluster tooltip.`,
    );
  return code;
}

export const MAINTAIN_COMMANDS: Subcommand[] = [
  {
    name: 'maintain',
    summary: 'Compact and defragment etcd one member at a time, disarm alarms, rescue NOSPACE',
    usage:
      'k3s-etcd maintain [--dry-run] [--yes] [--cluster NAME] [--rescue [--raise-quota SIZE]]\n' +
      '                  [--free-share 0.5] [--min-size 64MiB] [--quota-share 0.8] [--recent-revisions 10000]\n' +
      '                  [--endpoints URL,... --cacert F --cert F --key F] [--json]\n' +
      'k3s-etcd maintain --install-timer [--on-calendar SPEC] [--host NAME]... [--dry-run] [--yes]\n' +
      'k3s-etcd maintain --remove-timer [--host NAME]... [--dry-run] [--yes]',
    details:
      'Reads every member (endpoint status and /metrics: file size, in use, quota, alarms) and\n' +
      'defragments the members the rule picks: more than --free-share of the file free and the file\n' +
      'over --min-size, or the file over --quota-share of its quota. The history is compacted first\n' +
      "unless the last compaction is recent (K3s's API server compacts every 5 minutes). Members go\n" +
      'one at a time, followers first, the leader last after handing over its leadership, each\n' +
      'healthy and caught up before the next; nothing runs while a member is not healthy (it is\n' +
      'named). An armed NOSPACE never blocks it; alarms are disarmed only when every member is under\n' +
      '--quota-share of its quota. --dry-run shows who and why; otherwise it asks (--yes to skip).\n' +
      '--rescue, for a cluster at NOSPACE: says what fills the space, always compacts, defragments\n' +
      'every member that answers (skipping one that is down), disarms, and proves that a write\n' +
      'works; when the database still has no headroom it says which quota would, and --raise-quota\n' +
      'SIZE sets etcd.quotaBackendBytes in the inventory and applies it with provision etcd (asked).\n' +
      'A report (Markdown and JSON, 0600) goes to .k3s-etcd/reports/ next to the inventory.\n' +
      '--install-timer puts a systemd timer on every member host (over SSH, previewed and asked)\n' +
      'that runs the same maintenance without this tool (--on-calendar, systemd.time syntax; default\n' +
      'daily at 03:17): only the host whose member leads acts, one run at a time per host, the\n' +
      'rule from the flags above; each run leaves a JSON report in /var/lib/k3s-etcd/reports/ and\n' +
      'its outcome in etcd (/k3s-etcd/maintenance/last-run), shown by status and the tree.\n' +
      '--remove-timer takes it away again (the reports stay).\n' +
      `${ENDPOINT_HELP}\nExit 0 when done (or nothing to do), 1 when refused or not finished.`,
    options: MAINTAIN_OPTIONS,
    async run(ctx) {
      const rule = ruleFromFlags(ctx);
      if (ctx.values['install-timer'] === true || ctx.values['remove-timer'] === true) {
        if (ctx.values['install-timer'] === true && ctx.values['remove-timer'] === true)
          throw new UsageError('--install-timer or --remove-timer, not both');
        if (ctx.values['rescue'] === true)
          throw new UsageError('the timer does not rescue: --rescue runs from here only');
        return timerCommand(ctx, rule);
      }
      if (typeof ctx.values['on-calendar'] === 'string')
        throw new UsageError('--on-calendar goes with --install-timer');
      const rescue = ctx.values['rescue'] === true;
      const raise = ctx.values['raise-quota'];
      if (typeof raise === 'string' && !rescue)
        throw new UsageError('--raise-quota goes with --rescue');
      const target = await etcdTarget(ctx);
      const flagsGiven = typeof ctx.values['endpoints'] === 'string';
      const opts: MaintainOptions = {
        cluster: target.cluster?.name ?? 'endpoints',
        endpoints: target.endpoints,
        ...(target.tls ? { tls: target.tls } : {}),
        ...(target.cluster && !flagsGiven ? { metrics: metricsTargets(target.cluster) } : {}),
        rule,
        rescue,
        ...(target.timeoutMs ? { timeoutMs: target.timeoutMs } : {}),
        onLine: (l) => ctx.io.err(l),
      };
      const plan = await planMaintenance(opts);
      const dryRun = ctx.values['dry-run'] === true;
      if (dryRun && ctx.global.json) {
        json(ctx, { plan: { ...plan.survey, order: plan.defrag, refusal: plan.refusal } });
        return plan.refusal ? 1 : 0;
      }
      for (const l of renderPlan(plan)) (dryRun ? ctx.io.out : ctx.io.err)(l);
      if (plan.refusal) return 1;
      if (dryRun) return 0;
      if (plan.nothingToDo) return 0;
      const n = plan.defrag.order.length;
      const question = rescue
        ? `Compact, defragment ${n} member(s) one at a time, disarm NOSPACE and write a probe key?`
        : `${plan.survey.compaction?.compact ? 'Compact and ' : ''}${n > 0 ? `defragment ${n} member(s) one at a time (each blocks for a moment)` : 'settle the alarms'}?`;
      if (!(await confirm(ctx, question))) {
        ctx.io.err('Nothing done.');
        return 1;
      }
      let report = await runMaintenance(plan, opts);
      if (report.quota) {
        const want = inventorySize(report.quota.suggestedBytes);
        if (typeof raise === 'string' && target.cluster && !flagsGiven)
          report = await raiseQuota(ctx, opts, report, raise);
        else
          ctx.io.err(
            `${report.quota.why}: raise the quota to ${humanBytes(report.quota.suggestedBytes)}: ` +
              `\`k3s-etcd maintain --rescue --raise-quota ${want}\` (sets etcd.quotaBackendBytes and restarts each member on it)`,
          );
      }
      const root = target.cluster && !flagsGiven ? dirname(ctx.global.inventory) : ctx.io.cwd;
      const files = await writeReport(root, report);
      if (ctx.global.json) json(ctx, { report, files });
      else {
        for (const s of report.defrag.steps)
          ctx.io.out(
            `${s.member} (${s.role}${s.leadershipTo ? `, leadership to ${s.leadershipTo}` : ''}): ` +
              `${s.beforeBytes === undefined ? '?' : humanBytes(s.beforeBytes)} → ${s.afterBytes === undefined ? '?' : humanBytes(s.afterBytes)} ` +
              `in ${seconds(s.durationMs)}${s.ok ? '' : ` FAILED: ${s.error ?? '?'}`}`,
          );
        ctx.io.out(`${report.ok ? 'Done' : 'Not finished'}. Report: ${files.markdown}`);
      }
      return report.ok ? 0 : 1;
    },
  },
];
