/** `k3s-etcd provision etcd`: etcd on the member hosts, over SSH. */
import { provisionEtcd } from '../core/provision/provision';
import { selectHosts } from '../core/inventory/select';
import { rollingPlanLines } from '../core/rolling/restarts';
import { loadValid, selectCluster, type Subcommand } from './context';
import { previewGate, printer, report, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const provisionEtcdCommand: Subcommand = {
  name: 'provision etcd',
  summary: 'Install etcd with mutual TLS under systemd on the member hosts, over SSH',
  usage: 'k3s-etcd provision etcd [--host NAME]... [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `Runs the plan on every etcd host of the cluster (or only --host ones): the etcd user,
the binaries (etcd.install: download | upload | installed), /etc/etcd/pki with the member's
certificates, the data dir, /etc/etcd/etcd.env and the systemd unit, then start and wait
until healthy. A new cluster starts on all hosts together; on a running cluster, members
whose etcd restarts go one at a time (followers first, the leader last after handing over
its leadership), each healthy and caught up before the next; the first that fails gets its
previous files back and the rest are left alone. First shows what would change and which
members restart in what order, and asks (--yes to skip); --dry-run only shows it. A re-run
changes nothing when everything is in place. Exit 1 when a host fails.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, host: { type: 'string', multiple: true } },
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const hostNames = (ctx.values['host'] as unknown as string[] | undefined) ?? [];
    const hosts = selectHosts(cluster, hostNames);
    const ssh = await sshContext(ctx);
    const preview = await provisionEtcd(cluster, {
      dryRun: true,
      ssh,
      hosts: hosts.map((h) => h.name),
    });
    const gate = await previewGate(ctx, preview.runs, {
      nothing: `Everything is in place on ${preview.runs.length} host(s): nothing to do.`,
      question: (n, pending) => `Apply ${n} change(s) on ${pending.join(', ')}?`,
      ...(preview.rolling
        ? { notes: rollingPlanLines(preview.rolling), json: { rolling: preview.rolling } }
        : {}),
    });
    if (gate !== undefined) return gate;
    const result = await provisionEtcd(cluster, {
      dryRun: false,
      ssh,
      hosts: hosts.map((h) => h.name),
      onLine: printer(ctx),
    });
    const code = report(ctx, result.runs, {
      healthy: result.healthy,
      health: result.healthSummary,
    });
    if (!ctx.global.json && result.healthSummary) ctx.io.out(`health: ${result.healthSummary}`);
    return code === 0 && result.healthy !== false ? 0 : 1;
  },
};

export const PROVISION_COMMANDS: Subcommand[] = [provisionEtcdCommand];
