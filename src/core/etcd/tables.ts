/**
 * etcdctl's tables of `endpoint health`, `endpoint status` and `member list`, word for word: the
 * text the CLI prints and the editor shows.
 */
import {
  humanBytes,
  type EtcdMember,
  type HealthRow,
  type StatusRow,
} from '../../shared/etcdTypes';
import { renderTable } from '../format/table';

function took(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(6)}s` : `${ms.toFixed(6)}ms`;
}

export const HEALTH_HEADER = ['ENDPOINT', 'HEALTH', 'TOOK', 'ERROR'] as const;
export const STATUS_HEADER = [
  'ENDPOINT',
  'ID',
  'VERSION',
  'DB SIZE',
  'IS LEADER',
  'IS LEARNER',
  'RAFT TERM',
  'RAFT INDEX',
  'RAFT APPLIED INDEX',
  'ERRORS',
] as const;
export const MEMBERS_HEADER = [
  'ID',
  'STATUS',
  'NAME',
  'PEER ADDRS',
  'CLIENT ADDRS',
  'IS LEARNER',
] as const;

export function healthRows(rows: readonly HealthRow[]): string[][] {
  return rows.map((r) => [r.endpoint, String(r.health), took(r.tookMs), r.problem?.summary ?? '']);
}

export function statusRows(rows: readonly StatusRow[]): string[][] {
  return rows.map((r) =>
    r.problem
      ? [r.endpoint, '', '', '', '', '', '', '', '', r.problem.summary]
      : [
          r.endpoint,
          r.id,
          r.version,
          humanBytes(r.dbSize),
          String(r.isLeader),
          String(r.isLearner),
          r.raftTerm,
          r.raftIndex,
          r.raftAppliedIndex,
          r.errors.join(', '),
        ],
  );
}

export function memberRows(members: readonly EtcdMember[]): string[][] {
  return members.map((m) => [
    m.id,
    m.name ? 'started' : 'unstarted',
    m.name,
    m.peerUrls.join(','),
    m.clientUrls.join(','),
    String(m.isLearner),
  ]);
}

export function healthTable(rows: readonly HealthRow[]): string {
  return renderTable(HEALTH_HEADER, healthRows(rows));
}

export function statusTable(rows: readonly StatusRow[]): string {
  return renderTable(STATUS_HEADER, statusRows(rows));
}

export function membersTable(members: readonly EtcdMember[]): string {
  return renderTable(MEMBERS_HEADER, memberRows(members));
}
