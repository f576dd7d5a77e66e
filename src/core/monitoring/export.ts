/**
 * `monitoring export`: the files that let the monitoring an operator already runs judge the
 * external etcd as the Metrics tab does: prometheus.yml, rules.yml, kube-prometheus-stack
 * values with the `kubectl create secret` line, a Grafana dashboard. Planned first (what is
 * written, whether the monitoring client certificate is issued), then written. Files that name
 * the key's path are 0600; no file holds key material.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomicWrite';
import type { Cluster } from '../inventory/types';
import {
  planMonitoringClient,
  writePlan,
  type LeafAction,
  type PkiOptions,
  type SetPlan,
} from '../pki/set';
import { rulesYaml } from './alerts';
import { grafanaJson } from './dashboard';
import { kubectlSecretLine, kubeStackYaml } from './kubeStack';
import { prometheusYaml, RULES_FILE } from './prometheus';
import { refuse, scrapeSpec, type ScrapeSpec } from './targets';

export const MONITORING_FORMATS = [
  'prometheus',
  'kube-prometheus-stack',
  'rules',
  'grafana',
] as const;
export type MonitoringFormat = (typeof MONITORING_FORMATS)[number];

/** The workspace folder the editor (and the CLI by default) writes into, beside the inventory. */
export const MONITORING_DIR = 'monitoring';

export function isMonitoringFormat(v: string): v is MonitoringFormat {
  return (MONITORING_FORMATS as readonly string[]).includes(v);
}

export interface ExportFile {
  format: MonitoringFormat;
  name: string;
  content: string;
  mode: 0o600 | 0o644;
}

export interface MonitoringPlan {
  cluster: string;
  dir: string;
  spec: ScrapeSpec;
  files: ExportFile[];
  /** The monitoring client certificate: undefined when the metrics listener needs none. */
  certificate?: { action: LeafAction; reason?: string; certFile: string; plan: SetPlan };
  warnings: string[];
}

export interface MonitoringResult {
  plan: MonitoringPlan;
  /** Absolute paths written, the certificate's pair included when it was issued. */
  written: string[];
}

function render(spec: ScrapeSpec, format: MonitoringFormat): ExportFile[] {
  switch (format) {
    case 'prometheus':
      return [{ format, name: 'prometheus.yml', content: prometheusYaml(spec), mode: 0o600 }];
    case 'rules':
      return [{ format, name: RULES_FILE, content: rulesYaml(spec.cluster), mode: 0o644 }];
    case 'grafana':
      return [
        { format, name: 'grafana-dashboard.json', content: grafanaJson(spec.cluster), mode: 0o644 },
      ];
    case 'kube-prometheus-stack':
      return [
        {
          format,
          name: 'kube-prometheus-stack-values.yaml',
          content: kubeStackYaml(spec),
          mode: 0o600,
        },
        ...(spec.tls
          ? [
              {
                format,
                name: 'kubectl-secret.sh',
                content: `#!/bin/sh\n# The monitoring client's files as the secret kube-prometheus-stack mounts (k3s-etcd monitoring export).\nset -e\n${kubectlSecretLine(spec)}\n`,
                mode: 0o600 as const,
              },
            ]
          : []),
      ];
  }
}

/** What an export would write, and whether it issues the certificate; writes nothing. */
export async function planMonitoringExport(
  cluster: Cluster,
  opts: { dir: string; formats?: readonly MonitoringFormat[]; pki?: PkiOptions },
): Promise<MonitoringPlan> {
  const spec = scrapeSpec(cluster);
  const formats = opts.formats?.length ? [...new Set(opts.formats)] : [...MONITORING_FORMATS];
  const warnings: string[] = [];
  if (formats.includes('kube-prometheus-stack')) {
    const names = spec.members.filter((m) => !/^[0-9.]+$|:/.test(m.address));
    if (names.length)
      warnings.push(
        `kube-prometheus-stack's kubeEtcd.endpoints must be IP addresses; ${names.map((m) => `${m.member} (${m.address})`).join(', ')} ${names.length === 1 ? 'is' : 'are'} named by hostname: put its IP in the values`,
      );
  }
  let certificate: MonitoringPlan['certificate'];
  if (spec.tls) {
    const plan = await planMonitoringClient(cluster, opts.pki);
    const leaf = plan.leaves[0]!;
    certificate = {
      action: leaf.action,
      ...(leaf.reason ? { reason: leaf.reason } : {}),
      certFile: spec.tls.certFile,
      plan,
    };
  }
  return {
    cluster: cluster.name,
    dir: opts.dir,
    spec,
    files: formats.flatMap((f) => render(spec, f)),
    ...(certificate ? { certificate } : {}),
    warnings,
  };
}

/** Issues the monitoring client when needed (refused during a CA rotation), then the files. */
export async function writeMonitoringExport(
  cluster: Cluster,
  plan: MonitoringPlan,
  pki: PkiOptions = {},
): Promise<MonitoringResult> {
  const written: string[] = [];
  if (plan.certificate && plan.certificate.action !== 'keep') {
    const r = await writePlan(cluster, plan.certificate.plan, pki);
    written.push(...r.written.map((p) => join(cluster.pki.dir, p)));
  }
  try {
    await mkdir(plan.dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw refuse(`cannot make ${plan.dir}: ${(err as Error).message}`);
  }
  for (const f of plan.files) {
    const path = join(plan.dir, f.name);
    await writeFileAtomic(path, f.content, { mode: f.mode });
    written.push(path);
  }
  return { plan, written };
}

/**
 * What the monitoring client certificate does not limit, said plainly wherever it is issued:
 * the members require a client certificate from the cluster's CA but run without etcd's
 * authentication (no users, no roles), so any such certificate can write.
 */
export const MONITORING_CLIENT_LIMITS =
  "It is not read-only: etcd here runs without authentication (no etcd users or roles), so this certificate, like any certificate of the cluster's CA, can also write and delete every key; whoever holds its key holds the datastore. For Prometheus, prefer etcd.metricsPort in k3s-etcd.yaml (with the default metricsScheme http): a plain /metrics listener on each member that needs no client certificate and serves no keys (`k3s-etcd provision etcd` rolls it out one member at a time; export again after).";

/** The plan in words: the files, the certificate, where the metrics come from. */
export function monitoringPlanText(plan: MonitoringPlan): string {
  const s = plan.spec;
  const lines = [
    `Monitoring for cluster ${plan.cluster}: ${s.members.length} member${s.members.length === 1 ? '' : 's'} scraped ${
      s.via === 'metrics-listener'
        ? `on the metrics listener (${s.scheme}, port ${s.port})`
        : `on the client port ${s.port} with mutual TLS`
    }.`,
    ...s.members.map((m) => `  ${m.member}  ${s.scheme}://${m.target}/metrics`),
  ];
  if (plan.certificate) {
    const c = plan.certificate;
    lines.push(
      c.action === 'keep'
        ? `Client certificate: ${c.certFile} (CN monitoring, ClientAuth), kept.`
        : c.action === 'create'
          ? `Client certificate: ${c.certFile} (CN monitoring, ClientAuth) will be issued by the cluster's CA.`
          : `Client certificate: ${c.certFile} will be replaced (${c.reason ?? ''}).`,
      MONITORING_CLIENT_LIMITS,
    );
  }
  lines.push(`Files in ${plan.dir}:`);
  for (const f of plan.files)
    lines.push(
      `  ${f.name.padEnd(34)} ${f.format}${f.mode === 0o600 ? ' (0600: names the key file)' : ''}`,
    );
  for (const w of plan.warnings) lines.push(`Warning: ${w}`);
  return lines.join('\n');
}
