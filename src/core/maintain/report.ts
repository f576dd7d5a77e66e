/**
 * A maintenance run's report, rendered once for both front ends: Markdown for people (sizes
 * before and after per member, the time each took, the order, compaction, alarms) and JSON for
 * tools, written together into `.k3s-etcd/reports/` (the workspace's; the CLI's next to the
 * inventory) as 0600 files, atomically, with ISO 8601 times. The page the editor opens is the
 * same Markdown with its times in the editor's one format (local time with the zone).
 */
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { humanBytes } from '../../shared/etcdTypes';
import { writeFileAtomic } from '../files/atomicWrite';
import { REPORTS_DIR } from '../files/workspace';
import { printable } from '../keyspace/view';
import { seconds } from '../rolling/defrag';
import type { MaintenancePlan, MaintenanceReport } from './maintain';
import type { MemberReading } from './survey';

const size = (n: number | undefined) => (n === undefined ? '–' : humanBytes(n));
const pct = (x: number) => `${Math.round(x * 100)}%`;
const cell = (s: string) => s.replace(/[|\r\n]/g, ' ');

function sizeWords(m: MemberReading | undefined): string {
  if (!m || m.dbBytes === undefined) return '–';
  return `${size(m.dbBytes)} (${size(m.inUseBytes)} in use)`;
}

/** The dry run in words: each member's sizes and the rule's verdict, compaction, the order. */
export function renderPlan(plan: MaintenancePlan): string[] {
  const s = plan.survey;
  const out = [
    `${plan.rescue ? 'NOSPACE rescue' : 'Maintenance'} of ${plan.cluster} (rule: defragment when more than ${pct(s.rule.freeShare)} is free and the file is over ${humanBytes(s.rule.minDbBytes)}, or the file is over ${pct(s.rule.quotaShare)} of its quota)`,
  ];
  const verdict = (m: MemberReading) =>
    `${m.verdict.needed ? 'defragment' : 'leave'}: ${m.verdict.why}`;
  // One verdict for all (a NOSPACE, equal members) is said once, after them.
  const same = s.members.length > 1 && new Set(s.members.map(verdict)).size === 1;
  for (const m of s.members) {
    const alarms = m.alarms.length > 0 ? `, alarm ${m.alarms.join(' ')}` : '';
    const state = m.healthy ? '' : ` — not healthy: ${m.problem ?? 'unknown'}`;
    if (m.dbBytes === undefined) {
      out.push(`  ${m.name} (${m.role}): not read${alarms}${state}`);
      continue;
    }
    out.push(
      `  ${m.name} (${m.role}): ${sizeWords(m)} of ${size(m.quotaBytes)} quota${m.quotaFrom === 'default' ? " (etcd's default: its /metrics did not answer)" : ''}${alarms}${state}`,
    );
    if (!same) out.push(`    ${verdict(m)}`);
  }
  if (same) out.push(`  every member: ${verdict(s.members[0]!)}`);
  if (s.compaction) out.push(`Compaction: ${s.compaction.why}`);
  if (plan.refusal) out.push(`Refused: ${plan.refusal}`);
  else if (plan.defrag.order.length > 0)
    out.push(
      `Order (one at a time, followers first, the leader last): ${plan.defrag.order.join(', ')}`,
    );
  for (const k of plan.defrag.skipped) out.push(`Skipped: ${k.member} (${k.why})`);
  if (s.alarms.length > 0)
    out.push(
      `Alarms: ${s.alarms.map((a) => `${a.alarm} on ${a.member}`).join(', ')} (disarmed only when every member has headroom under its quota)`,
    );
  if (plan.nothingToDo) out.push('Nothing to do.');
  return out;
}

/**
 * The report as Markdown. `stamp` words its start and finish: ISO 8601 as it is (the file in
 * `.k3s-etcd/reports/`, the CLI's), or the editor's one time format for the page it opens.
 */
export function renderReport(
  r: MaintenanceReport,
  stamp: (iso: string) => string = (iso) => iso,
): string {
  const after = (name: string) => r.after.find((m) => m.name === name);
  const step = (name: string) => r.defrag.steps.find((s) => s.member === name);
  const out = [
    `# ${r.rescue ? 'NOSPACE rescue' : 'Maintenance'} of ${r.cluster}`,
    '',
    `- Started ${stamp(r.startedAt)}, finished ${stamp(r.finishedAt)}: ${r.ok ? '**done**' : '**not finished**'}`,
    `- Rule: defragment when more than ${pct(r.rule.freeShare)} of a file is free and it is over ${humanBytes(r.rule.minDbBytes)}, or it is over ${pct(r.rule.quotaShare)} of its quota`,
    `- Compaction: ${r.compaction.done ? `done at revision ${r.compaction.revision}` : r.compaction.error ? `failed: ${r.compaction.error}` : 'not done'} — ${r.compaction.why}`,
    '',
    '## Members',
    '',
    '| member | role | before | after | quota | defragmentation |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const m of r.before) {
    const s = step(m.name);
    const took = s
      ? s.ok
        ? `${seconds(s.durationMs)}`
        : `failed after ${seconds(s.durationMs)}: ${s.error ?? '?'}`
      : (r.defrag.skipped.find((k) => k.member === m.name)?.why ?? 'not needed');
    out.push(
      `| ${cell(m.name)} | ${m.role} | ${sizeWords(m)} | ${sizeWords(after(m.name))} | ${size(m.quotaBytes)} | ${cell(took)} |`,
    );
  }
  out.push('', '## Order', '');
  if (r.defrag.steps.length === 0) out.push('No member was defragmented.');
  r.defrag.steps.forEach((s, i) => {
    const handed = s.leadershipTo ? `, the leadership handed to ${s.leadershipTo} first` : '';
    out.push(
      `${i + 1}. ${s.member} (${s.role}${handed}): ${size(s.beforeBytes)} → ${size(s.afterBytes)} in ${seconds(s.durationMs)} (deadline ${Math.round(s.timeoutMs / 1000)} s)${s.ok ? '' : ` — failed: ${s.error ?? '?'}`}`,
    );
  });
  if (r.defrag.stopped) out.push('', `Stopped: ${r.defrag.stopped}`);
  out.push('', '## Alarms', '');
  if (r.alarms.before.length === 0) out.push('None were armed.');
  else {
    out.push(
      `Armed before: ${r.alarms.before.map((a) => `${a.alarm} on ${a.member}`).join(', ')}.`,
    );
    if (r.alarms.disarmed.length > 0)
      out.push(
        `Disarmed: ${r.alarms.disarmed.map((a) => `${a.alarm} on ${a.member}`).join(', ')}.`,
      );
    if (r.alarms.kept) out.push(`Kept: ${r.alarms.kept}.`);
  }
  if (r.quota)
    out.push(
      '',
      `Quota: ${r.quota.why}; raise etcd.quotaBackendBytes to ${humanBytes(r.quota.suggestedBytes)} and apply it with \`k3s-etcd provision etcd\` (a rolling restart).`,
    );
  if (r.writeProbe)
    out.push(
      '',
      r.writeProbe.ok
        ? 'Writes: a probe key was put and deleted: the cluster takes writes again.'
        : `Writes: still refused (${r.writeProbe.error ?? '?'}).`,
    );
  if (r.keyspace) {
    out.push(
      '',
      '## What fills the space',
      '',
      `${humanBytes(r.keyspace.bytes)} in ${r.keyspace.keys} keys at revision ${r.keyspace.revision} (keys and values, before compaction):`,
      '',
      '| resource | keys | bytes |',
      '| --- | --- | --- |',
      ...r.keyspace.resources.map(
        (g) => `| ${cell(printable(g.resource))} | ${g.keys} | ${humanBytes(g.bytes)} |`,
      ),
    );
    if (r.keyspace.largest.length > 0)
      out.push(
        '',
        'The largest keys:',
        '',
        ...r.keyspace.largest
          .slice(0, 5)
          .map((k) => `- \`${printable(k.key).replace(/`/g, "'")}\` ${humanBytes(k.bytes)}`),
      );
  }
  out.push('', '## Log', '', ...r.lines.map((l) => `- ${l}`), '');
  return out.join('\n');
}

/** `maintain-<cluster>-20261206T183000Z` (the cluster's name reduced to safe characters). */
export function reportBaseName(
  r: Pick<MaintenanceReport, 'cluster' | 'startedAt' | 'rescue'>,
): string {
  const name = r.cluster.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 63) || 'cluster';
  const stamp = r.startedAt.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${r.rescue ? 'rescue' : 'maintain'}-${name}-${stamp}`;
}

/** Writes the report's Markdown and JSON into `<root>/.k3s-etcd/reports/`; returns both paths. */
export async function writeReport(
  root: string,
  r: MaintenanceReport,
): Promise<{ markdown: string; json: string }> {
  const dir = join(root, REPORTS_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const base = join(dir, reportBaseName(r));
  const files = { markdown: `${base}.md`, json: `${base}.json` };
  await writeFileAtomic(files.markdown, renderReport(r), { mode: 0o600 });
  await writeFileAtomic(files.json, `${JSON.stringify(r, null, 2)}\n`, { mode: 0o600 });
  return files;
}
