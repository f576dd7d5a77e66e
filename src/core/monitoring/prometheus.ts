/**
 * prometheus.yml for plain Prometheus: one job per cluster, one static target per member with
 * the stable labels cluster and member, the monitoring client's TLS files by path, and
 * rules.yml beside it. A complete file; its scrape_configs entry also merges into another.
 */
import { stringify } from 'yaml';
import { promDuration, SCRAPE_INTERVAL_MS } from './promql';
import type { ScrapeSpec } from './targets';

export const RULES_FILE = 'rules.yml';

export function scrapeConfig(spec: ScrapeSpec): Record<string, unknown> {
  return {
    job_name: spec.job,
    scheme: spec.scheme,
    metrics_path: '/metrics',
    ...(spec.tls
      ? {
          tls_config: {
            ca_file: spec.tls.caFile,
            cert_file: spec.tls.certFile,
            key_file: spec.tls.keyFile,
          },
        }
      : {}),
    static_configs: spec.members.map((m) => ({
      targets: [m.target],
      labels: { cluster: spec.cluster, member: m.member },
    })),
  };
}

export function prometheusYaml(spec: ScrapeSpec): string {
  const interval = promDuration(SCRAPE_INTERVAL_MS);
  const doc = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: [RULES_FILE],
    scrape_configs: [scrapeConfig(spec)],
  };
  return [
    `# Prometheus scrape configuration for the etcd of cluster ${spec.cluster}, written by`,
    '# k3s-etcd monitoring export. The TLS files are named by path; no key is copied here.',
    spec.tls
      ? "# On another machine, copy them there (the key 0600, readable by Prometheus's user) and change the paths."
      : '# The members serve metrics on their plain-HTTP listener (etcd.metricsPort): no certificate needed.',
    stringify(doc, { lineWidth: 0 }),
  ].join('\n');
}
