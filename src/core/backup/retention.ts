/**
 * Generational retention, the rule the hosts apply (backup/hostScript.ts has the same in `sh`,
 * held to these cases by a test): of the backups named `<cluster>-<YYYYMMDDTHHMMSSZ>…`, keep
 * the newest of each of the last `hourly` hours, `daily` days and `weekly` ISO weeks that have
 * one, and always the newest backup; every other is deleted.
 */

export interface Keep {
  hourly: number;
  daily: number;
  weekly: number;
}

const STAMP = /-(\d{8})T(\d{2})\d{4}Z/;

/** ISO 8601 week of a UTC day (`2026-W49`), as `date -u +%G-W%V` prints it. */
export function isoWeek(yyyymmdd: string): string {
  const d = new Date(
    Date.UTC(
      Number(yyyymmdd.slice(0, 4)),
      Number(yyyymmdd.slice(4, 6)) - 1,
      Number(yyyymmdd.slice(6, 8)),
    ),
  );
  const dayNum = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - dayNum); // the Thursday of its week decides the year
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** The names to delete (the others are kept), for names that carry a backup's stamp. */
export function toPrune(names: readonly string[], keep: Keep): string[] {
  const dated = names
    .map((n) => ({ n, m: STAMP.exec(n) }))
    .filter((x): x is { n: string; m: RegExpExecArray } => x.m !== null)
    .sort((a, b) => (a.m[0] < b.m[0] ? 1 : a.m[0] > b.m[0] ? -1 : 0));
  const kept = new Set<string>();
  if (dated[0]) kept.add(dated[0].n);
  const generation = (limit: number, bucket: (m: RegExpExecArray) => string) => {
    const seen = new Set<string>();
    for (const { n, m } of dated) {
      const b = bucket(m);
      if (seen.has(b)) continue;
      if (seen.size >= limit) break;
      seen.add(b);
      kept.add(n);
    }
  };
  generation(keep.hourly, (m) => `${m[1]}T${m[2]}`);
  generation(keep.daily, (m) => m[1]!);
  generation(keep.weekly, (m) => isoWeek(m[1]!));
  return dated.filter((x) => !kept.has(x.n)).map((x) => x.n);
}
