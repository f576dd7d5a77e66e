/**
 * The Metrics tab of the etcd health panel: the cluster line and what breaks etcd's guidance in
 * words, a table per member with each figure coloured by its rule, and charts over the rolling
 * window drawn with uPlot (canvas; it styles through the CSSOM only, so the strict CSP holds).
 * Colours are VS Code's chart theme colours.
 */
import uPlot from 'uplot';
import { humanBytes } from '../../src/shared/etcdTypes';
import {
  marks,
  memberRole,
  type Finding,
  type Level,
  type MemberMetrics,
  type RuleId,
  type SeriesPoint,
} from '../../src/shared/metricsTypes';
import { localClock, localStamp } from '../../src/shared/stamp';
import { integerRange, integerTicks } from '../../src/shared/ticks';
import {
  type MetricsPanelState,
  type MetricsWebviewToHost,
  METRICS_MAINTAIN_LABEL,
  MetricsMaintainCommand,
  MetricsRefreshCommand,
} from '../../src/shared/protocol';
import { el, icon } from './dom';
import { button } from './tables';

const LEVEL_ICON: Record<Level, string> = {
  unjudged: 'circle-large-outline',
  ok: 'pass-filled',
  warn: 'warning',
  bad: 'error',
};
const LEVEL_CLASS: Record<Level, string> = {
  unjudged: 'muted',
  ok: 'ok',
  warn: 'warn',
  bad: 'bad',
};

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function palette(): string[] {
  return [
    cssVar('--vscode-charts-blue', '#3794ff'),
    cssVar('--vscode-charts-orange', '#d18616'),
    cssVar('--vscode-charts-purple', '#b180d7'),
    cssVar('--vscode-charts-green', '#89d185'),
    cssVar('--vscode-charts-yellow', '#cca700'),
  ];
}

const fmtMs = (v: number | undefined) =>
  v === undefined ? '–' : v >= 10 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`;
/** "0.6 / 12 ms": two latencies under one unit. */
const fmtMsPair = (a: number | undefined, b: number | undefined) =>
  a === undefined && b === undefined ? '–' : `${fmtMs(a).replace(/ ms$/, '')} / ${fmtMs(b)}`;
const fmtRate = (v: number | undefined) =>
  v === undefined ? '–' : v >= 10 ? `${Math.round(v)}/s` : `${v.toFixed(1)}/s`;

/**
 * A figure coloured by its rule's level, with the reason as its tooltip; `sub` is a second line,
 * and why a figure is not judged ("too few samples") goes there too, so no cell widens the table.
 */
function figure(text: string, finding: Finding | undefined, sub?: string): HTMLElement {
  const span = el('span', text, finding ? `figure ${LEVEL_CLASS[finding.level]}` : 'figure');
  if (finding) {
    span.title = finding.message;
    if (finding.level !== 'ok') span.prepend(icon(LEVEL_ICON[finding.level]), ' ');
  }
  const second = [sub, finding?.note].filter((x) => x !== undefined).join(' · ');
  if (second) span.append(el('span', second, 'sub'));
  return span;
}

/** "cert 41 d" / "cert 18 y": the days the served certificate has left, short. */
function certSub(daysLeft: number): string {
  if (daysLeft <= 0) return 'cert expired';
  if (daysLeft < 1) return 'cert < 1 d';
  return daysLeft >= 730
    ? `cert ${Math.floor(daysLeft / 365)} y`
    : `cert ${Math.floor(daysLeft)} d`;
}

/** The table's columns; each cell carries its header too, for the card layout of narrow panels. */
const COLUMNS = [
  'Member',
  'WAL fsync p50 / p99',
  'Commit p99',
  'Role',
  'Leader changes',
  'Proposals',
  'Database',
  'Peer RTT p99',
  'gRPC',
  'Keys',
] as const;

function memberTable(members: readonly MemberMetrics[]): HTMLTableElement {
  const t = el('table', undefined, 'members cards');
  t.setAttribute('aria-label', 'metrics per member');
  const head = el('tr');
  for (const h of COLUMNS) head.append(el('th', h));
  t.append(head);
  for (const m of members) {
    const tr = el('tr');
    const f = (rule: RuleId) => m.findings.find((x) => x.rule === rule);
    const s = m.summary;
    const name = el('td', undefined, 'member');
    name.setAttribute('data-label', COLUMNS[0]);
    // The certificate the member served (HTTPS scrapes): its end date under the name, coloured
    // by the expiry warning window.
    const cert = f('served-cert');
    name.append(
      m.error
        ? figure(m.member, { rule: 'has-leader', level: 'bad', message: m.error })
        : figure(m.member, cert, cert?.value !== undefined ? certSub(cert.value) : undefined),
    );
    tr.append(name);
    const role = memberRole(s);
    const cells: Array<string | HTMLElement> = !s
      ? [m.error ?? 'no data yet']
      : [
          figure(fmtMsPair(s.walFsyncP50Ms, s.walFsyncP99Ms), f('wal-fsync')),
          figure(fmtMs(s.backendCommitP99Ms), f('backend-commit')),
          figure(role ?? '–', f('has-leader')),
          figure(
            String(s.leaderChanges),
            f('leader-changes'),
            s.leaderChangesTotal !== undefined ? `${s.leaderChangesTotal} since start` : undefined,
          ),
          figure(
            fmtRate(s.proposalsCommittedPerSec),
            f('proposals-failed') ?? f('proposals-pending'),
            `${s.proposalsPending ?? '–'} pending · ${s.proposalsFailed} failed`,
          ),
          figure(
            s.dbTotalBytes === undefined
              ? '–'
              : `${humanBytes(s.dbTotalBytes)}${s.quotaBytes ? ` of ${humanBytes(s.quotaBytes)}` : ''}`,
            f('db-quota') ?? f('db-fragmented'),
            s.dbTotalBytes === undefined ? undefined : `${humanBytes(s.dbInUseBytes ?? 0)} in use`,
          ),
          figure(fmtMs(s.peerRttP99Ms), f('peer-rtt')),
          figure(fmtRate(s.grpcRequestsPerSec), f('grpc-errors'), `${s.grpcErrors} failed`),
          s.keys === undefined ? '–' : String(s.keys),
        ];
    cells.forEach((c, i) => {
      const td = el('td');
      if (s) td.setAttribute('data-label', COLUMNS[i + 1] ?? '');
      else td.colSpan = COLUMNS.length - 1;
      td.append(c);
      tr.append(td);
    });
    t.append(tr);
  }
  return t;
}

interface ChartSpec {
  title: string;
  unit: 'ms' | '/s' | 'bytes' | 'count';
  pick: (p: SeriesPoint) => number | undefined;
  /** A guidance line (e.g. 10 ms for WAL fsync p99). */
  limit?: number;
  limitLabel?: string;
}

function chartSpecs(members: readonly MemberMetrics[]): ChartSpec[] {
  const quota = members.find((m) => m.summary?.quotaBytes)?.summary?.quotaBytes;
  return [
    {
      title: 'WAL fsync p99',
      unit: 'ms',
      pick: (p) => p.walFsyncP99Ms,
      limit: 10,
      limitLabel: 'guidance 10 ms',
    },
    {
      title: 'Backend commit p99',
      unit: 'ms',
      pick: (p) => p.backendCommitP99Ms,
      limit: 25,
      limitLabel: 'guidance 25 ms',
    },
    { title: 'Proposals committed', unit: '/s', pick: (p) => p.proposalsPerSec },
    { title: 'gRPC requests', unit: '/s', pick: (p) => p.grpcPerSec },
    {
      title: 'Database size',
      unit: 'bytes',
      pick: (p) => p.dbTotalBytes,
      ...(quota ? { limit: quota, limitLabel: `quota ${humanBytes(quota)}` } : {}),
    },
    { title: 'Peer round trip p99', unit: 'ms', pick: (p) => p.peerRttP99Ms },
    { title: 'Leader changes (since start)', unit: 'count', pick: (p) => p.leaderChanges },
    { title: 'Keys', unit: 'count', pick: (p) => p.keys },
  ];
}

function axisValue(unit: ChartSpec['unit'], v: number): string {
  if (unit === 'bytes') return humanBytes(Math.round(v));
  if (unit === 'ms') return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ms`;
  if (unit === '/s') return `${v >= 10 ? Math.round(v) : v.toFixed(1)}/s`;
  return String(Math.round(v));
}

/** One chart, a line per member, x = scrape time. Returns undefined when no member has data. */
function chart(
  spec: ChartSpec,
  members: readonly MemberMetrics[],
  width: number,
): HTMLElement | undefined {
  const xs = [...new Set(members.flatMap((m) => m.series.map((p) => p.at)))].sort((a, b) => a - b);
  const ys = members.map((m) => {
    const byAt = new Map(m.series.map((p) => [p.at, spec.pick(p)]));
    return xs.map((x) => byAt.get(x) ?? null);
  });
  if (!ys.some((y) => y.some((v) => v !== null))) return undefined;
  const fg = cssVar('--vscode-descriptionForeground', '#999');
  const grid = cssVar('--vscode-charts-lines', 'rgba(128,128,128,0.25)');
  const colours = palette();
  const warn = cssVar('--vscode-charts-red', '#f14c4c');
  const data: uPlot.AlignedData = [xs.map((x) => x / 1000), ...ys];
  const box = el('figure', undefined, 'chart-box');
  box.setAttribute('aria-label', `${spec.title} per member`);
  box.append(el('figcaption', spec.limitLabel ? `${spec.title} (${spec.limitLabel})` : spec.title));
  const values = ys.flat().filter((v): v is number => v !== null);
  const top = Math.max(
    ...values,
    spec.limit && spec.limit <= Math.max(...values) * 3 ? spec.limit : 0,
  );
  const opts: uPlot.Options = {
    width,
    height: 160,
    legend: { show: true, live: false },
    cursor: { show: true, drag: { x: false, y: false } },
    scales: {
      x: { time: true },
      y: { range: spec.unit === 'count' ? integerRange(values) : [0, top > 0 ? top * 1.1 : 1] },
    },
    axes: [
      {
        stroke: fg,
        grid: { stroke: grid, width: 1 },
        ticks: { stroke: grid },
        // Local time of day, as everywhere in the editor (uPlot's own is "1:46am").
        values: (_u, splits) => {
          const seconds = splits.some((v) => Math.round(v) % 60 !== 0);
          return splits.map((v) => localClock(v * 1000, { seconds }));
        },
      },
      {
        stroke: fg,
        grid: { stroke: grid, width: 1 },
        ticks: { stroke: grid },
        size: 64,
        ...(spec.unit === 'count'
          ? { splits: (_u: uPlot, _i: number, min: number, max: number) => integerTicks(min, max) }
          : {}),
        values: (_u, splits) => splits.map((v) => axisValue(spec.unit, v)),
      },
    ],
    series: [
      {},
      ...members.map((m, i) => ({
        label: m.member,
        stroke: colours[i % colours.length]!,
        width: 1.5,
        spanGaps: true,
        points: { show: xs.length < 3 },
        value: (_u: uPlot, v: number | null) => (v === null ? '–' : axisValue(spec.unit, v)),
      })),
    ],
    hooks: spec.limit
      ? {
          draw: [
            (u: uPlot) => {
              const y = u.valToPos(spec.limit!, 'y', true);
              if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) return;
              const c = u.ctx;
              c.save();
              c.strokeStyle = warn;
              c.setLineDash([6, 4]);
              c.beginPath();
              c.moveTo(u.bbox.left, y);
              c.lineTo(u.bbox.left + u.bbox.width, y);
              c.stroke();
              c.restore();
            },
          ],
        }
      : {},
  };
  const holder = el('div');
  box.append(holder);
  new uPlot(opts, data, holder);
  return box;
}

export function metricsTab(
  s: MetricsPanelState | undefined,
  post: (m: MetricsWebviewToHost) => void,
): HTMLElement {
  const root = el('div', undefined, 'metrics');
  const bar = el('div', undefined, 'bar');
  const refresh = el('vscode-button', 'Scrape now');
  refresh.setAttribute('icon', 'refresh');
  refresh.setAttribute('secondary', '');
  refresh.addEventListener('click', () => post(MetricsRefreshCommand.create({})));
  const m = s?.metrics;
  const line = el(
    'span',
    m ? m.summary : s?.error ? s.error.message : 'Waiting for the first scrape…',
    m ? LEVEL_CLASS[m.level] : s?.error ? 'bad' : 'muted',
  );
  line.setAttribute('data-testid', 'metrics-summary');
  if (m) line.prepend(icon(LEVEL_ICON[m.level]), ' ');
  bar.append(line, el('span', undefined, 'actions'));
  bar.lastElementChild!.append(refresh);
  root.append(bar);
  if (s)
    root.append(
      el(
        'p',
        `Window: last ${s.windowMinutes} min, a scrape every ${s.intervalSeconds || '–'} s${m ? ` · last at ${localStamp(m.at)}` : ''} · limits from etcd's hardware and tuning guidance`,
        'muted',
      ),
    );
  if (!m) return root;

  const broken = m.members.flatMap((x) => [
    ...(x.error
      ? [{ member: x.member, level: 'bad' as Level, message: `cannot read ${x.url}: ${x.error}` }]
      : []),
    ...x.findings.filter((f) => marks(f.level)).map((f) => ({ member: x.member, ...f })),
  ]);
  const list = el('ul', undefined, 'findings');
  list.setAttribute('aria-label', 'findings');
  if (broken.length === 0) {
    const li = el('li', undefined, 'ok');
    li.append(icon('pass-filled'), " Every member is within etcd's guidance.");
    list.append(li);
  }
  for (const b of broken) {
    const li = el('li', undefined, LEVEL_CLASS[b.level]);
    li.append(icon(LEVEL_ICON[b.level]), ` ${b.member}: ${b.message}`);
    list.append(li);
  }
  // A database near its quota or mostly free pages: the fix is one click away.
  const space = broken.some(
    (b) => 'rule' in b && (b.rule === 'db-quota' || b.rule === 'db-fragmented'),
  );
  if (space) {
    const li = el('li');
    li.setAttribute('data-testid', 'metrics-maintain');
    li.append(
      button(METRICS_MAINTAIN_LABEL, 'tools', () => post(MetricsMaintainCommand.create({}))),
      ' compacts and defragments one member at a time (previewed first)',
    );
    list.append(li);
  }
  const wrap = el('div', undefined, 'table-wrap');
  wrap.append(memberTable(m.members));
  root.append(list, wrap);

  if (m.members.some((x) => x.summary?.latencyBasis === 'since-start'))
    root.append(
      el('p', 'No WAL write in the window yet: latencies shown are since etcd started.', 'muted'),
    );
  const grid = el('div', undefined, 'chart-grid');
  const width = Math.max(260, Math.floor((document.body.clientWidth - 64) / 2));
  for (const spec of chartSpecs(m.members)) {
    const c = chart(spec, m.members, width);
    if (c) grid.append(c);
  }
  if (grid.childElementCount === 0)
    grid.append(el('p', 'Charts appear after the second scrape.', 'muted'));
  root.append(grid);
  return root;
}
