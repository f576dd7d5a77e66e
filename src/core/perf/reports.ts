/**
 * Past performance checks, kept as JSON in the workspace (`.k3s-etcd/reports/`), listed with
 * date and verdict, exported as Markdown, and compared side by side.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { markdownTable } from '../format/table';
import type { PerfResult } from '../../shared/perfTypes';
import { PERF_PROFILES } from './stats';

export { REPORTS_DIR } from '../files/workspace';

export interface SavedReport {
  version: 1;
  cluster: string;
  result: PerfResult;
}

export interface ReportSummary {
  /** File name inside the reports folder. */
  file: string;
  cluster: string;
  startedAt: string;
  load: PerfResult['load'];
  verdict: 'PASS' | 'FAIL' | 'CANCELLED';
  rps: number;
  target: number;
}

export function verdictOf(r: PerfResult): ReportSummary['verdict'] {
  return r.cancelled ? 'CANCELLED' : r.pass ? 'PASS' : 'FAIL';
}

export function reportFileName(cluster: string, r: PerfResult): string {
  return `${cluster}-${r.startedAt.replace(/[:.]/g, '-')}-${r.load}.json`;
}

export async function saveReport(
  dir: string,
  cluster: string,
  result: PerfResult,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = reportFileName(cluster, result);
  const body: SavedReport = { version: 1, cluster, result };
  await writeFile(join(dir, file), `${JSON.stringify(body, null, 2)}\n`);
  return file;
}

export async function readReport(dir: string, file: string): Promise<SavedReport> {
  const parsed = JSON.parse(await readFile(join(dir, file), 'utf8')) as SavedReport;
  if (parsed.version !== 1 || !parsed.result)
    throw new Error(`${file} is not a k3s-etcd performance report`);
  return parsed;
}

/** Newest first; files that are not reports are skipped. */
export async function listReports(dir: string, cluster?: string): Promise<ReportSummary[]> {
  const files = await readdir(dir).catch(() => [] as string[]);
  const out: ReportSummary[] = [];
  for (const file of files.filter((f) => f.endsWith('.json'))) {
    try {
      const r = await readReport(dir, file);
      if (cluster && r.cluster !== cluster) continue;
      out.push({
        file,
        cluster: r.cluster,
        startedAt: r.result.startedAt,
        load: r.result.load,
        verdict: verdictOf(r.result),
        rps: r.result.rps,
        target: r.result.target,
      });
    } catch {
      // not ours
    }
  }
  return out.sort((a, b) => b.startedAt.localeCompare(a.startedAt));
}

const s = (ms: number) => `${(ms / 1000).toFixed(6)}s`;

/** Two runs side by side, as Markdown. */
export function compareReports(a: SavedReport, b: SavedReport): string {
  const rows: Array<[string, (r: PerfResult) => string]> = [
    ['cluster', () => ''],
    ['started', (r) => r.startedAt],
    ['load', (r) => `${r.load} (${r.clients} clients, target ${r.target} writes/s)`],
    ['verdict', (r) => verdictOf(r)],
    [
      'throughput',
      (r) => `${r.rps.toFixed(0)} writes/s (${((r.rps / r.target) * 100).toFixed(0)}% of target)`,
    ],
    ['writes / errors', (r) => `${r.writes} / ${r.errors}`],
    ['slowest', (r) => s(r.slowestMs)],
    ['stddev', (r) => s(r.stddevMs)],
    ['average', (r) => s(r.avgMs)],
    ['p50 / p99', (r) => `${s(r.p50Ms)} / ${s(r.p99Ms)}`],
  ];
  const table = markdownTable(
    ['', 'A', 'B'],
    rows.map(([label, f]) => [
      label,
      label === 'cluster' ? a.cluster : f(a.result),
      label === 'cluster' ? b.cluster : f(b.result),
    ]),
  );
  const ratio = b.result.rps > 0 ? (a.result.rps / b.result.rps).toFixed(2) : '∞';
  return `# etcd performance: A vs B\n\n${table}\n\nThroughput ratio A/B: ${ratio}\n\nVerdict lines A:\n\n\`\`\`\n${a.result.lines.join('\n')}\n\`\`\`\n\nVerdict lines B:\n\n\`\`\`\n${b.result.lines.join('\n')}\n\`\`\`\n`;
}

// ---- one run as Markdown --------------------------------------------------------------------

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const ms = (x: number) => `${x.toFixed(1)} ms`;

export function perfStatus(r: PerfResult): 'PASS' | 'FAIL' | 'CANCELLED' {
  return r.cancelled ? 'CANCELLED' : r.pass ? 'PASS' : 'FAIL';
}

/** A Markdown report of one run, for export. */
export function formatPerfReport(r: PerfResult): string {
  const p = PERF_PROFILES[r.load];
  const out: string[] = [];
  out.push(`# etcd performance check: ${perfStatus(r)}`, '');
  out.push('| | |', '|---|---|');
  const rows: Array<[string, string]> = [
    [
      'Load',
      `${r.load} (${p.clients} clients, target ${r.target} writes/s, 256-byte keys, 1 KiB values)`,
    ],
    ['Started', r.startedAt],
    [
      'Duration',
      `${(r.durationMs / 1000).toFixed(0)} s${r.cancelled ? `, cancelled after ${(r.elapsedMs / 1000).toFixed(1)} s` : ''}`,
    ],
    ['Endpoints', r.endpoints.join(', ')],
    ['Prefix', `\`${r.prefix}\``],
    [
      'Clean-up',
      r.cleanedUp
        ? `prefix deleted (${r.deletedKeys} keys)${r.deleteRevision ? ` at revision ${r.deleteRevision}` : ''}`
        : `NOT deleted${r.cleanupError ? `: ${r.cleanupError}` : ''}; run \`etcdctl del --prefix ${r.prefix}\``,
    ],
  ];
  if (r.skippedEndpoints.length > 0)
    rows.push(['Left out', `${r.skippedEndpoints.join(', ')} (no answer before the load)`]);
  for (const [k, v] of rows) out.push(`| ${k} | ${cell(v)} |`);
  out.push('');
  if (r.lines.length > 0) {
    out.push("## Verdict (etcdctl's lines)", '', '```text', ...r.lines, '```', '');
  }
  out.push('## Summary', '');
  out.push(
    '| writes | errors | throughput | average | stddev | fastest | p50 | p99 | slowest |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${r.writes} | ${r.errors} | ${r.rps.toFixed(1)} writes/s | ${ms(r.avgMs)} | ${ms(r.stddevMs)} | ${ms(r.fastestMs)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${ms(r.slowestMs)} |`,
    '',
  );
  const errors = Object.entries(r.errorDist);
  if (errors.length > 0) {
    out.push('## Errors', '', '| count | error |', '|---:|---|');
    for (const [msg, n] of errors) out.push(`| ${n} | ${cell(msg)} |`);
    out.push('');
  }
  if (r.seconds.length > 0) {
    out.push('## Per second', '');
    out.push('| second | writes | p50 | p99 | max | errors |', '|---:|---:|---:|---:|---:|---:|');
    for (const s of r.seconds)
      out.push(
        `| ${s.second} | ${s.writes} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${ms(s.maxMs)} | ${s.errors} |`,
      );
    out.push('');
  }
  out.push(
    'Pass criteria (etcdctl): no errors, throughput above 90% of the target, slowest request at most 0.5 s, stddev at most 0.1 s.',
    '',
  );
  return out.join('\n');
}
