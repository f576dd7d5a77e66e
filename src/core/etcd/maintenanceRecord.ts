/**
 * The last run of the maintenance timer, as its script leaves it in etcd under
 * `MAINTENANCE_RECORD_KEY` (maintain/timerScript.ts): a small JSON record the health poll reads
 * with the rest of the snapshot, so the tree shows the last scheduled run without SSH. The value
 * comes from the cluster, so it is hostile until parsed here: every field checked and bounded,
 * anything else dropped.
 */
import type { MaintenanceRun } from '../../shared/etcdTypes';

export const MAINTENANCE_RECORD_KEY = '/k3s-etcd/maintenance/last-run';

const RESULTS: ReadonlySet<string> = new Set(['done', 'nothing', 'failed', 'refused']);
const MAX_TEXT = 300;
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** The record, or undefined when the value is not one (absent, too big, malformed). */
export function parseMaintenanceRecord(
  value: Buffer | string | undefined,
): MaintenanceRun | undefined {
  if (value === undefined || value.length === 0 || value.length > 16 * 1024) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(value.toString());
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const r = v as Record<string, unknown>;
  const text = (x: unknown) =>
    typeof x === 'string' ? x.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').slice(0, MAX_TEXT) : '';
  if (r['v'] !== 1 || typeof r['result'] !== 'string' || !RESULTS.has(r['result']))
    return undefined;
  const host = r['host'];
  const started = r['startedAt'];
  const finished = r['finishedAt'];
  if (typeof host !== 'string' || !NAME.test(host)) return undefined;
  if (typeof started !== 'string' || !STAMP.test(started)) return undefined;
  if (typeof finished !== 'string' || !STAMP.test(finished)) return undefined;
  const defragmented = Array.isArray(r['defragmented'])
    ? r['defragmented']
        .filter((x): x is string => typeof x === 'string' && NAME.test(x))
        .slice(0, 64)
    : [];
  return {
    host,
    startedAt: started,
    finishedAt: finished,
    result: r['result'] as MaintenanceRun['result'],
    summary: text(r['summary']),
    defragmented,
  };
}

/** One line for a tooltip or a terminal: "scheduled maintenance on edge-1 at …: done, …". */
export function maintenanceRunLine(run: MaintenanceRun, stamp: (iso: string) => string): string {
  const words = {
    done: 'done',
    nothing: 'nothing to do',
    failed: 'FAILED',
    refused: 'refused',
  }[run.result];
  return `scheduled maintenance ${stamp(run.finishedAt)} on ${run.host}: ${words}${run.summary && run.result !== 'nothing' ? `: ${run.summary}` : ''}`;
}
