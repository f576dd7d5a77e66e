/**
 * "Maintain etcd…" on a cluster (the CLI's `maintain`): the dry run shown rendered (each
 * member's sizes, quota, alarms and the rule's verdict, compaction, the order), a modal that
 * says what will happen, then the run with progress and cancel; the report (Markdown and JSON)
 * goes to `.k3s-etcd/reports/` beside the inventory and opens. A cluster with an armed NOSPACE
 * gets the rescue instead (what fills the space, compaction, every member that answers, disarm,
 * a write that proves it); when its database still lacks headroom, raising
 * etcd.quotaBackendBytes is offered, applied with Provision etcd's own preview and question.
 * The rule's thresholds are settings (k3sEtcd.maintain.*).
 */
import * as vscode from 'vscode';
import { connectionFor } from '../../core/etcd/connection';
import { metricsTargets } from '../../core/etcd/scrape';
import { setEtcdQuota } from '../../core/inventory/edit';
import {
  planMaintenance,
  runMaintenance,
  type MaintainOptions,
  type MaintenancePlan,
} from '../../core/maintain/maintain';
import { renderPlan, renderReport, writeReport } from '../../core/maintain/report';
import { localStamp } from '../../core/format/stamp';
import { inventorySize } from '../../core/maintain/rule';
import type { TreeNode } from '../../core/tree/model';
import { humanBytes } from '../../shared/etcdTypes';
import { COMMANDS } from '../../shared/commands';
import { Config } from '../config';
import type { ExtensionCtx } from '../ctx';
import { planUri, showPlan, type PlanDocuments } from '../planDocuments';
import { resolveCluster, workspaceDir } from '../pick';
import { withCancellableProgress } from '../progress';
import { runProvisionTask } from '../tasks/provider';
import { DEFAULT_ON_CALENDAR, calendarProblem } from '../../core/maintain/timer';

const planMarkdown = (plan: MaintenancePlan) =>
  [
    `# ${plan.rescue ? 'NOSPACE rescue' : 'Maintenance'} of ${plan.cluster} (dry run)`,
    '',
    '```text',
    ...renderPlan(plan),
    '```',
    '',
  ].join('\n');

export function maintainCommand(ctx: ExtensionCtx, docs: PlanDocuments | undefined) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    const conn = await connectionFor(cluster);
    const opts: MaintainOptions = {
      cluster: cluster.name,
      endpoints: conn.endpoints,
      tls: conn.tls,
      metrics: metricsTargets(cluster),
      rule: Config.maintainRule((m) => ctx.log.warn(m)),
    };
    let plan = await withCancellableProgress(`Reading ${cluster.name}`, (_r, signal) =>
      planMaintenance({ ...opts, signal }),
    );
    if (plan.survey.alarms.some((a) => a.alarm === 'NOSPACE')) {
      opts.rescue = true;
      plan = await withCancellableProgress(`Reading ${cluster.name}`, (_r, signal) =>
        planMaintenance({ ...opts, signal }),
      );
    }
    ctx.log.info(`maintain ${cluster.name}: ${renderPlan(plan).join(' | ')}`);
    if (docs) await showPlan(docs, planUri(`maintain-${cluster.name}.md`), planMarkdown(plan));
    if (plan.refusal) throw new Error(plan.refusal);
    if (plan.nothingToDo) {
      void vscode.window.showInformationMessage(
        `${cluster.name}: no member needs defragmentation, ${plan.survey.compaction?.why ?? 'no compaction needed'}.`,
      );
      return;
    }
    const action = plan.rescue ? 'Rescue' : 'Maintain';
    const choice = await vscode.window.showWarningMessage(
      plan.rescue
        ? `${cluster.name} is at its quota (NOSPACE): rescue it?`
        : `Maintain ${cluster.name}: ${plan.defrag.order.length} member(s) to defragment?`,
      {
        modal: true,
        detail: [
          ...renderPlan(plan).slice(1),
          '',
          'Each member blocks for a moment while it is defragmented; the leader goes last, after handing over its leadership.',
        ].join('\n'),
      },
      action,
    );
    if (choice !== action) return;
    const report = await withCancellableProgress(
      `${plan.rescue ? 'Rescuing' : 'Maintaining'} ${cluster.name}`,
      (progress, signal) =>
        runMaintenance(plan, {
          ...opts,
          signal,
          onLine: (l) => {
            ctx.log.info(`maintain ${cluster.name}: ${l}`);
            progress(l);
          },
        }),
    );
    // What filled the space (the rescue reads it first): the tree's tooltip names the top consumer.
    if (report.keyspace)
      ctx.keyspace.remember(cluster.name, report.keyspace, Date.parse(report.startedAt));
    const files = await writeReport(workspaceDir(ctx), report);
    void ctx.health.refreshAll();
    // The page shows local times with the zone; the file written above keeps ISO 8601.
    if (docs)
      await showPlan(
        docs,
        planUri(`maintain-${cluster.name}-report.md`),
        renderReport(report, localStamp),
      );
    ctx.log.info(`maintain ${cluster.name}: report ${files.markdown}`);
    if (report.quota) {
      const want = inventorySize(report.quota.suggestedBytes);
      const raise = `Raise Quota to ${humanBytes(report.quota.suggestedBytes)}…`;
      const next = await vscode.window.showWarningMessage(
        `${report.quota.why}. Raise etcd.quotaBackendBytes to ${want} and restart each member on it (Provision etcd)?`,
        raise,
      );
      if (next !== raise) return;
      const file = (ctx.inventory.current() as { file: string }).file;
      await setEtcdQuota(file, cluster.name, want);
      await vscode.commands.executeCommand(COMMANDS.provisionEtcd, node);
      void vscode.window.showInformationMessage(
        `Once every member runs with ${want}, run Maintain etcd… again to disarm NOSPACE.`,
      );
      return;
    }
    const say = report.ok ? vscode.window.showInformationMessage : vscode.window.showWarningMessage;
    void say(
      `${cluster.name}: ${report.ok ? 'done' : 'not finished'}: ${report.defrag.steps.length} member(s) defragmented${report.alarms.disarmed.length ? ', NOSPACE disarmed' : ''}${report.alarms.kept ? `; ${report.alarms.kept}` : ''}.`,
    );
  };
}

/**
 * "Schedule Maintenance on Hosts…" (the CLI's `maintain --install-timer` / `--remove-timer`): a
 * schedule picked (or typed, in systemd.time syntax), then the task that shows the hosts' dry
 * run, asks, and applies it on every member host.
 */
export function scheduleMaintenanceCommand(ctx: ExtensionCtx) {
  return async (node?: TreeNode): Promise<void> => {
    const cluster = await resolveCluster(ctx, node);
    type Pick = vscode.QuickPickItem & { onCalendar?: string; custom?: boolean; remove?: boolean };
    const items: Pick[] = [
      {
        label: '$(calendar) Daily at 03:17',
        description: DEFAULT_ON_CALENDAR,
        onCalendar: DEFAULT_ON_CALENDAR,
      },
      {
        label: '$(calendar) Weekly, Sunday 03:17',
        description: 'Sun *-*-* 03:17:00',
        onCalendar: 'Sun *-*-* 03:17:00',
      },
      { label: '$(watch) Hourly', description: 'hourly', onCalendar: 'hourly' },
      { label: '$(edit) Another schedule…', description: 'systemd.time OnCalendar', custom: true },
      {
        label: '$(trash) Remove the timer from the hosts',
        description: 'its reports stay',
        remove: true,
      },
    ];
    const pick = await vscode.window.showQuickPick(items, {
      title: `Schedule maintenance of ${cluster.name} on its etcd hosts`,
      placeHolder:
        "When each host's timer runs (host time); only the leader's host acts: compaction, defragmentation one member at a time",
    });
    if (!pick) return;
    if (pick.remove) {
      await runProvisionTask(ctx, cluster.name, undefined, 'maintain-timer', { remove: true });
      return;
    }
    let onCalendar = pick.onCalendar;
    if (pick.custom)
      onCalendar = await vscode.window.showInputBox({
        title: 'OnCalendar (systemd.time)',
        value: DEFAULT_ON_CALENDAR,
        prompt:
          'For example "*-*-* 02:30:00", "Mon..Fri 04:00", "hourly"; the hosts check it before anything changes.',
        validateInput: (v) => calendarProblem(v.trim()),
      });
    if (!onCalendar) return;
    await runProvisionTask(ctx, cluster.name, undefined, 'maintain-timer', {
      onCalendar: onCalendar.trim(),
    });
  };
}
