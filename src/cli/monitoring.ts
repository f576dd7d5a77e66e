/** `k3s-etcd monitoring export`: the Metrics tab's judgement for the monitoring already running. */
import { dirname, join, relative, resolve } from 'node:path';
import {
  isMonitoringFormat,
  MONITORING_DIR,
  MONITORING_FORMATS,
  monitoringPlanText,
  planMonitoringExport,
  writeMonitoringExport,
  type MonitoringFormat,
} from '../core/monitoring/export';
import { json, loadValid, selectCluster, UsageError, type Subcommand } from './context';
import { PASSPHRASE_OPTION, pkiOptions } from './certs';
import { didYouMean } from './usage';

function formatOf(value: unknown): MonitoringFormat[] {
  if (typeof value !== 'string') return [];
  if (isMonitoringFormat(value)) return [value];
  throw new UsageError(
    `--format ${value} is not a format${didYouMean(value, MONITORING_FORMATS) || ` (formats: ${MONITORING_FORMATS.join(', ')})`}`,
  );
}

const exportCommand: Subcommand = {
  name: 'monitoring export',
  summary: 'Write Prometheus, kube-prometheus-stack, alert rule and Grafana files for the etcd',
  usage: `k3s-etcd monitoring export [--format ${MONITORING_FORMATS.join('|')}] [--out DIR] [--dry-run] [--ca-passphrase-file F] [--json]`,
  details: `Writes into --out (default monitoring/<cluster> beside the inventory), every format without --format:
  prometheus              prometheus.yml: a job scraping every member, labels cluster and member,
                          the monitoring client's TLS files by path, rule_files rules.yml
  rules                   rules.yml: the Metrics tab's rules as alerts (same thresholds, minimum
                          observations, for: from its sustained breach, same words, a runbook)
  kube-prometheus-stack   kube-prometheus-stack-values.yaml (kubeEtcd.endpoints, the service
                          monitor's scheme and TLS files, the rules) and kubectl-secret.sh
  grafana                 grafana-dashboard.json: the Metrics tab's figures per member
The members are scraped on etcd.metricsPort when the inventory sets it (plain HTTP needs no
certificate), else on the client port with mutual TLS: the cluster's CA then issues
client/monitoring.pem (CN monitoring, ClientAuth only) in the pki dir, once; refused during a CA
rotation. Files naming the key's path are 0600; no file holds a key or a certificate.`,
  options: {
    format: { type: 'string' },
    out: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    ...PASSPHRASE_OPTION,
  },
  async run(ctx) {
    const formats = formatOf(ctx.values['format']);
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const out = ctx.values['out'];
    const dir =
      typeof out === 'string'
        ? resolve(ctx.io.cwd, out)
        : join(dirname(ctx.global.inventory), MONITORING_DIR, cluster.name);
    const pki = pkiOptions(ctx);
    const plan = await planMonitoringExport(cluster, { dir, formats, pki });
    const dryRun = ctx.values['dry-run'] === true;
    const summary = {
      cluster: plan.cluster,
      dir: plan.dir,
      scheme: plan.spec.scheme,
      targets: plan.spec.members.map((m) => ({ member: m.member, target: m.target })),
      certificate: plan.certificate
        ? { file: plan.certificate.certFile, action: plan.certificate.action }
        : undefined,
      files: plan.files.map((f) => ({ name: f.name, format: f.format, mode: f.mode.toString(8) })),
      warnings: plan.warnings,
    };
    if (!ctx.global.json) ctx.io.out(monitoringPlanText(plan));
    if (dryRun) {
      if (ctx.global.json) json(ctx, { ...summary, dryRun: true });
      else ctx.io.out('Dry run: nothing was written.');
      return 0;
    }
    const r = await writeMonitoringExport(cluster, plan, pki);
    if (ctx.global.json) {
      json(ctx, { ...summary, written: r.written });
      return 0;
    }
    ctx.io.out(
      `Wrote ${plan.files.length} file${plan.files.length === 1 ? '' : 's'} in ${relative(ctx.io.cwd, plan.dir) || plan.dir}.`,
    );
    if (plan.files.some((f) => f.name === 'prometheus.yml'))
      ctx.io.out(
        `Check it: promtool check config ${relative(ctx.io.cwd, join(plan.dir, 'prometheus.yml'))}`,
      );
    return 0;
  },
};

export const MONITORING_COMMANDS: Subcommand[] = [exportCommand];
