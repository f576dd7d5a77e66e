/** `k3s-etcd etcdctl-env`: the etcdctl environment for the cluster. */
import { etcdctlEnv, exportLines } from '../core/etcd/etcdctlEnv';
import { json, loadValid, selectCluster, type Subcommand } from './context';

const etcdctlEnvCommand: Subcommand = {
  name: 'etcdctl-env',
  summary: 'Print the etcdctl environment for the cluster (ETCDCTL_API, endpoints, TLS files)',
  usage: 'k3s-etcd etcdctl-env',
  details: `Prints export lines for a shell profile or eval: ETCDCTL_API=3, ETCDCTL_ENDPOINTS (every
member's client URL), ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY (the inventory's etcd.tls, or
the generated admin certificate). Example: eval "$(k3s-etcd etcdctl-env)"; etcdctl endpoint health`,
  async run(ctx) {
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const env = await etcdctlEnv(cluster);
    if (ctx.global.json) json(ctx, env);
    else ctx.io.out(exportLines(env));
    return 0;
  },
};

export const ETCDCTL_COMMANDS: Subcommand[] = [etcdctlEnvCommand];
