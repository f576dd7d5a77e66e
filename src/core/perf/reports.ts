/**
 * Past performance checks, kept as JSON in the workspace (`.k3s-etcd/reports/`), listed with
 * date and verdict, exported as Markdown, and compared side by side.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { markdownTable } from '../format/table';
import type { PerfResult } from '../../shared/perfTypes';

export const REPORTS_DIR = join('.k3s-etcd', 'reports');

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
