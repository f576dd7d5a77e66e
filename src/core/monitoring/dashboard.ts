/**
 * A Grafana dashboard (JSON model, schemaVersion 39: Grafana 10.4 and 11) with the Metrics
 * tab's figures: a row of the rules' verdicts per member (their thresholds from the one table),
 * then the tab's charts with the same titles, units and guidance lines. The data source is a
 * variable, chosen on import. Expressions come from promql.ts, like the alert rules'.
 */
import { ruleDefinition, type AlertRuleId } from '../metrics/rules';
import { chart, figure } from './promql';
import { checkedName } from './targets';

export const GRAFANA_SCHEMA_VERSION = 39;

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

type Unit = 'ms' | 'ops' | 'reqps' | 'bytes' | 'short' | 'percentunit' | 'none';

interface Series {
  expr: string;
  legend: string;
}

interface PanelSpec {
  type: 'stat' | 'timeseries';
  title: string;
  description?: string;
  unit: Unit;
  series: Series[];
  /** Coloured steps: warn, then bad (or bad alone). */
  steps?: Array<{ color: 'orange' | 'red'; value: number }>;
  /** For a figure that is bad below its threshold (has leader, scraped, database in use). */
  below?: number;
  mappings?: Array<{ value: string; text: string; color: string }>;
}

/** Threshold steps of a rule's levels, as the Metrics tab colours them. */
function ruleSteps(id: AlertRuleId): NonNullable<PanelSpec['steps']> {
  return ruleDefinition(id).levels.map((l) => ({
    color: l.level === 'bad' ? ('red' as const) : ('orange' as const),
    value: l.threshold,
  }));
}

function panelSpecs(c: string): PanelSpec[] {
  const per = (expr: string): Series[] => [{ expr, legend: '{{member}}' }];
  const yesNo = (yes: string, no: string) => [
    { value: '1', text: yes, color: 'green' },
    { value: '0', text: no, color: 'red' },
  ];
  return [
    {
      type: 'stat',
      title: 'Scraped',
      unit: 'none',
      series: per(figure('member-down', c)),
      below: 1,
      mappings: yesNo('up', 'down'),
    },
    {
      type: 'stat',
      title: 'Has leader',
      unit: 'none',
      series: per(figure('has-leader', c)),
      below: 1,
      mappings: yesNo('yes', 'no leader'),
    },
    {
      type: 'stat',
      title: 'Leader',
      unit: 'none',
      series: per(chart.isLeader(c)),
      mappings: [
        { value: '1', text: 'leader', color: 'blue' },
        { value: '0', text: 'follower', color: 'text' },
      ],
    },
    {
      type: 'stat',
      title: 'Leader changes (15 min)',
      unit: 'short',
      series: per(figure('leader-changes', c)),
      steps: ruleSteps('leader-changes'),
    },
    {
      type: 'stat',
      title: 'Database of its quota',
      unit: 'percentunit',
      series: per(figure('db-quota', c)),
      steps: ruleSteps('db-quota'),
    },
    {
      type: 'stat',
      title: 'gRPC failures',
      unit: 'percentunit',
      series: per(figure('grpc-errors', c)),
      steps: ruleSteps('grpc-errors'),
    },
    {
      type: 'timeseries',
      title: 'WAL fsync p99',
      unit: 'ms',
      series: per(figure('wal-fsync', c)),
      steps: ruleSteps('wal-fsync'),
    },
    {
      type: 'timeseries',
      title: 'Backend commit p99',
      unit: 'ms',
      series: per(figure('backend-commit', c)),
      steps: ruleSteps('backend-commit'),
    },
    {
      type: 'timeseries',
      title: 'Proposals committed',
      unit: 'ops',
      series: per(chart.proposalsPerSec(c)),
    },
    {
      type: 'timeseries',
      title: 'gRPC requests',
      unit: 'reqps',
      series: [
        { expr: chart.grpcPerSec(c), legend: '{{member}}' },
        { expr: chart.grpcErrorsPerSec(c), legend: '{{member}} failed' },
      ],
    },
    {
      type: 'timeseries',
      title: 'Database size',
      unit: 'bytes',
      series: [
        { expr: chart.dbTotalBytes(c), legend: '{{member}}' },
        { expr: chart.dbInUseBytes(c), legend: '{{member}} in use' },
        { expr: chart.quotaBytes(c), legend: '{{member}} quota' },
      ],
    },
    {
      type: 'timeseries',
      title: 'Peer round trip p99',
      unit: 'ms',
      series: per(figure('peer-rtt', c)),
      steps: ruleSteps('peer-rtt'),
    },
    {
      type: 'timeseries',
      title: 'Leader changes (since start)',
      unit: 'short',
      series: per(chart.leaderChangesTotal(c)),
    },
    { type: 'timeseries', title: 'Keys', unit: 'short', series: per(chart.keys(c)) },
    {
      type: 'timeseries',
      title: 'Proposals pending',
      unit: 'short',
      series: per(figure('proposals-pending', c)),
      steps: ruleSteps('proposals-pending'),
    },
    {
      type: 'timeseries',
      title: 'Database in use',
      unit: 'percentunit',
      series: per(figure('db-fragmented', c)),
      below: ruleDefinition('db-fragmented').levels[0]!.threshold,
    },
  ];
}

function thresholds(p: PanelSpec) {
  if (p.below !== undefined)
    return {
      mode: 'absolute',
      steps: [
        { color: 'red', value: null },
        { color: 'green', value: p.below },
      ],
    };
  return {
    mode: 'absolute',
    steps: [{ color: 'green', value: null }, ...(p.steps ?? [])],
  };
}

function panel(p: PanelSpec, id: number, gridPos: { h: number; w: number; x: number; y: number }) {
  const custom =
    p.type === 'timeseries'
      ? { custom: { thresholdsStyle: { mode: p.steps || p.below !== undefined ? 'line' : 'off' } } }
      : {};
  return {
    id,
    type: p.type,
    title: p.title,
    datasource: DATASOURCE,
    gridPos,
    fieldConfig: {
      defaults: {
        unit: p.unit,
        thresholds: thresholds(p),
        ...(p.mappings
          ? {
              mappings: [
                {
                  type: 'value',
                  options: Object.fromEntries(
                    p.mappings.map((m, i) => [m.value, { text: m.text, color: m.color, index: i }]),
                  ),
                },
              ],
            }
          : {}),
        ...custom,
      },
      overrides: [],
    },
    options:
      p.type === 'stat'
        ? {
            reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
            colorMode: 'background',
            graphMode: 'none',
            textMode: 'value_and_name',
            orientation: 'auto',
            justifyMode: 'auto',
          }
        : {
            legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
            tooltip: { mode: 'multi', sort: 'none' },
          },
    targets: p.series.map((s, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DATASOURCE,
      expr: s.expr,
      legendFormat: s.legend,
    })),
  };
}

/** The dashboard's JSON model for one cluster. */
export function grafanaDashboard(clusterName: string): Record<string, unknown> {
  const c = checkedName(clusterName, 'the cluster name');
  const panels: unknown[] = [];
  let x = 0;
  let y = 0;
  let id = 1;
  for (const spec of panelSpecs(c)) {
    const [w, h] = spec.type === 'stat' ? [4, 5] : [12, 8];
    panels.push(panel(spec, id++, { h, w, x, y }));
    x += w;
    if (x >= 24) {
      x = 0;
      y += h;
    }
  }
  return {
    title: `etcd of ${c} (k3s-etcd)`,
    uid: `k3s-etcd-${c}`.slice(0, 40),
    description:
      "The figures of k3s-etcd's Metrics tab, per etcd member. Written by k3s-etcd monitoring export.",
    tags: ['etcd', 'k3s-etcd'],
    editable: true,
    schemaVersion: GRAFANA_SCHEMA_VERSION,
    version: 1,
    refresh: '30s',
    time: { from: 'now-1h', to: 'now' },
    timezone: 'browser',
    graphTooltip: 1,
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Prometheus',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
          refresh: 1,
          options: [],
        },
      ],
    },
    annotations: { list: [] },
    links: [],
    panels,
  };
}

export function grafanaJson(cluster: string): string {
  return `${JSON.stringify(grafanaDashboard(cluster), null, 2)}\n`;
}
