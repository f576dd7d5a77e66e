/**
 * The "Backups" node of a cluster that has a `backup:` block: what the last status read (made on
 * demand, never polled: SSH may prompt) said of the backups on the hosts. "not read yet" until
 * one was read; then "fresh · newest 40 min ago", or the first reason it is not fresh. The
 * judgement of the read is kept, and a newest backup that has aged past twice the interval since
 * is said too (the tree is redrawn long after a read).
 */
import type { BackupEntry, BackupStatus } from '../backup/status';
import { localStamp } from '../format/stamp';
import type { ReadState } from './readState';
import type { Cluster } from '../inventory/types';
import { humanBytes } from '../../shared/etcdTypes';

/** What the editor knows of a cluster's backups: the last read, or why it failed. */
export type BackupState = ReadState<BackupStatus>;

export interface BackupsNode {
  kind: 'backups';
  id: string;
  label: string;
  description?: string;
  tooltip?: string;
  children?: undefined;
  cluster: string;
  /** unread: no status read since the editor started; stale: a reason it is not fresh. */
  state: 'unread' | 'fresh' | 'stale';
  /** Why it is not fresh, in words (empty when fresh or unread). */
  problems: string[];
  /** What the timer warned about ahead (certificates ending soon); marks the node too. */
  warnings?: string[];
}

/** "40 min", "5 h", "3 days". */
export function ageWords(ms: number): string {
  const min = Math.max(0, Math.round(ms / 60_000));
  if (min < 120) return `${min} min`;
  const h = Math.round(ms / 3_600_000);
  return h < 48 ? `${h} h` : `${Math.round(h / 24)} days`;
}

const SHORT = 70;
const short = (text: string) => (text.length > SHORT ? `${text.slice(0, SHORT - 1)}…` : text);

function newestLines(b: BackupEntry): string[] {
  const copies = b.copies.map((c) => `${c.to}${c.ok ? '' : ' (FAILED)'}`).join(', ');
  return [
    `Newest: ${localStamp(b.takenAt)} on ${b.on}: revision ${b.revision}, ${b.keys} keys, ${humanBytes(b.size)}`,
    `  copies: ${copies || 'none'}`,
    ...(b.drill ? [`  drill ${b.drill.ok ? 'passed' : 'FAILED'} ${localStamp(b.drill.at)}`] : []),
  ];
}

/**
 * The node, or undefined when the cluster has no backup block. While a read runs, the node says
 * so before what the previous read found (SSH to every backup host can take a while).
 */
export function backupsNode(
  cluster: Cluster,
  state: BackupState | undefined,
  now = Date.now(),
): BackupsNode | undefined {
  if (!state?.reading) return judged(cluster, state, now);
  const { reading: _, ...before } = state;
  const node = judged(cluster, before.result || before.error ? before : undefined, now);
  if (!node) return undefined;
  return {
    ...node,
    description: node.state === 'unread' ? 'reading the hosts…' : `reading… · ${node.description}`,
    tooltip: `Reading the backup hosts now, over SSH…\n${node.tooltip}`,
  };
}

function judged(
  cluster: Cluster,
  state: BackupState | undefined,
  now: number,
): BackupsNode | undefined {
  const b = cluster.backup;
  if (!b) return undefined;
  const base = {
    kind: 'backups' as const,
    id: `backups:${cluster.name}`,
    label: 'Backups',
    cluster: cluster.name,
  };
  const setting = `Every ${b.interval} on one backup host (the leader's when it is one) into ${b.localDir}, encrypted, ${b.destinations.length} destination(s) off the host; keeps ${b.keep.hourly} hourly, ${b.keep.daily} daily, ${b.keep.weekly} weekly.`;
  if (!state)
    return {
      ...base,
      state: 'unread',
      problems: [],
      description: 'not read yet',
      tooltip: [
        setting,
        'Not read yet: Refresh (inline), Show Backup Status or Run Backup Now read the hosts over SSH. Set Up Backups… puts the timer on them.',
      ].join('\n'),
    };
  const s = state.result;
  const problems = s ? [...s.problems] : [state.error ?? 'the hosts could not be read'];
  const newest = s?.newest;
  const old = newest ? now - Date.parse(newest.takenAt) : undefined;
  // Fresh when read, but aged since: said as the status would say it now.
  if (problems.length === 0 && old !== undefined && old > 2 * b.intervalSeconds * 1000)
    problems.push(
      `the newest backup is ${ageWords(old)} old: more than twice the interval (${b.interval})`,
    );
  const fresh = problems.length === 0;
  const warnings = s?.warnings ?? [];
  const warned =
    warnings.length > 0
      ? ` · ${warnings.length} certificate warning${warnings.length === 1 ? '' : 's'}`
      : '';
  return {
    ...base,
    state: fresh ? 'fresh' : 'stale',
    problems,
    ...(warnings.length > 0 ? { warnings } : {}),
    description: fresh
      ? `fresh · newest ${old === undefined ? '?' : ageWords(old)} ago${warned}`
      : short(problems[0]!),
    tooltip: [
      setting,
      `Read ${localStamp(state.at)}: ${s ? `${s.backups.length} backup(s)` : 'failed'}.`,
      ...(fresh
        ? ['Fresh: the newest backup is within twice the interval, nothing failed.']
        : ['Not fresh:', ...problems.map((p) => `  - ${p}`)]),
      ...(warnings.length > 0 ? ['Warned by the timer:', ...warnings.map((w) => `  - ${w}`)] : []),
      ...(newest ? newestLines(newest) : []),
      ...(s?.lastDrill && s.lastDrill.file !== newest?.file
        ? [
            `Last drill ${s.lastDrill.ok ? 'passed' : 'FAILED'} ${localStamp(s.lastDrill.at)} (${s.lastDrill.file})`,
          ]
        : []),
    ].join('\n'),
  };
}
