/**
 * kube-prometheus-stack's values for an external etcd: `kubeEtcd.endpoints` (the members'
 * addresses; the chart makes a Service and Endpoints for them), the service monitor's scheme and
 * TLS files as the chart mounts a secret (`prometheus.prometheusSpec.secrets`), relabelings
 * that give every target the stable labels cluster and member, and the alert rules. The secret
 * itself is made by the `kubectl create secret` line, from the workspace files by path.
 */
import { stringify } from 'yaml';
import { shellCommand } from '../ssh/quote';
import { alertRules } from './alerts';
import type { ScrapeSpec } from './targets';

/** The secret's name and where the Prometheus operator mounts it. */
export const SECRET_NAME = 'k3s-etcd-monitoring';
export const SECRET_DIR = `/etc/prometheus/secrets/${SECRET_NAME}`;
export const DEFAULT_NAMESPACE = 'monitoring';
export const SECRET_FILES = { ca: 'ca.pem', cert: 'monitoring.pem', key: 'monitoring-key.pem' };

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function kubeStackValues(spec: ScrapeSpec): Record<string, unknown> {
  const addresses = spec.members.map((m) => m.address);
  const tls = spec.tls
    ? {
        caFile: `${SECRET_DIR}/${SECRET_FILES.ca}`,
        certFile: `${SECRET_DIR}/${SECRET_FILES.cert}`,
        keyFile: `${SECRET_DIR}/${SECRET_FILES.key}`,
        insecureSkipVerify: false,
      }
    : {};
  return {
    kubeEtcd: {
      enabled: true,
      endpoints: addresses,
      service: { enabled: true, port: spec.port, targetPort: spec.port },
      serviceMonitor: {
        enabled: true,
        scheme: spec.scheme,
        ...tls,
        relabelings: [
          { targetLabel: 'cluster', replacement: spec.cluster, action: 'replace' },
          ...spec.members.map((m) => ({
            sourceLabels: ['__address__'],
            regex: escapeRegex(m.target),
            targetLabel: 'member',
            replacement: m.member,
            action: 'replace',
          })),
        ],
      },
    },
    ...(spec.tls ? { prometheus: { prometheusSpec: { secrets: [SECRET_NAME] } } } : {}),
    additionalPrometheusRulesMap: {
      [`k3s-etcd-${spec.cluster}`]: alertRules(spec.cluster),
    },
  };
}

export function kubeStackYaml(spec: ScrapeSpec): string {
  return [
    `# kube-prometheus-stack values for the external etcd of cluster ${spec.cluster}, written by`,
    '# k3s-etcd monitoring export. Merge into your values (helm upgrade ... -f this-file).',
    ...(spec.tls
      ? [
          `# Create the secret with the monitoring client's files first (kubectl-secret.sh):`,
          `#   ${kubectlSecretLine(spec)}`,
        ]
      : []),
    stringify(kubeStackValues(spec), { lineWidth: 0 }),
  ].join('\n');
}

/** `kubectl create secret generic ...` from the workspace files, every argument quoted. */
export function kubectlSecretLine(spec: ScrapeSpec, namespace = DEFAULT_NAMESPACE): string {
  if (!spec.tls) return '';
  return shellCommand([
    'kubectl',
    'create',
    'secret',
    'generic',
    SECRET_NAME,
    '--namespace',
    namespace,
    `--from-file=${SECRET_FILES.ca}=${spec.tls.caFile}`,
    `--from-file=${SECRET_FILES.cert}=${spec.tls.certFile}`,
    `--from-file=${SECRET_FILES.key}=${spec.tls.keyFile}`,
  ]);
}
