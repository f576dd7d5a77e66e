/** `k3s-etcd member fix-peer-url`: repair a member whose host's address changed, over SSH. */
import { renderColumns } from '../core/format/table';
import { diagnosePeerUrl, fixPeerUrl, repairPlanLines } from '../core/repair/peerUrl';
import { confirm, json, loadValid, selectCluster, UsageError, type Subcommand } from './context';
import { printer, SSH_HELP, SSH_OPTIONS, sshContext } from './remote';

const memberFixPeerUrlCommand: Subcommand = {
  name: 'member fix-peer-url',
  summary: "Repair a member whose host's IP changed (peer URL, certificates, env file, inventory)",
  usage: 'k3s-etcd member fix-peer-url MEMBER [--address NEW_ADDRESS] [--dry-run] [--yes]',
  details: `Reads the host's addresses over SSH (at NEW_ADDRESS when given), the member list, the env
file and the certificate, and shows what is stale. Then, after a confirmation naming the member
ID and the new URL: re-issues the member's certificates for the new address, runs \`member update\`
through a healthy member (a single member: through itself over an SSH tunnel), rewrites the env
file, restarts etcd, waits until healthy and updates the host's address in k3s-etcd.yaml.
With datastore k3s-embedded-etcd: the member update uses K3s's etcd client certificate read from
the host with sudo (kept in memory); K3s's own files are not touched: restart K3s afterwards.
Refuses when the restart would lose quorum, or when NEW_ADDRESS belongs to another host.
Exit 1 when the repair fails or is refused.

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, address: { type: 'string' } },
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member fix-peer-url needs the MEMBER (host or member name)');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const address = typeof ctx.values['address'] === 'string' ? ctx.values['address'] : undefined;
    const ssh = await sshContext(ctx);
    const d = await diagnosePeerUrl(cluster, name, {
      ssh,
      ...(address ? { newAddress: address } : {}),
    });
    if (ctx.global.json && (ctx.values['dry-run'] === true || d.stale.length === 0)) {
      json(ctx, d);
      return 0;
    }
    if (!ctx.global.json) {
      ctx.io.out(
        `${d.member}${d.memberId ? ` (${d.memberId})` : ''} on ${d.host}: ${d.oldAddress} → ${d.newAddress}; member list read through ${d.via}`,
      );
      if (d.stale.length === 0) {
        ctx.io.out('Nothing is stale: no repair needed.');
        return 0;
      }
      ctx.io.out(
        renderColumns(
          ['STALE', 'NOW', 'WANTED'],
          d.stale.map((s) => [s.what, s.now, s.want]),
        ),
      );
      ctx.io.out(`quorum: ${d.quorum.ok ? 'ok' : 'REFUSED'}: ${d.quorum.why}`);
      if (d.quorum.ok) {
        ctx.io.out('The repair:');
        for (const line of repairPlanLines(d).steps) ctx.io.out(`  ${line}`);
      }
    }
    if (ctx.values['dry-run'] === true) return d.quorum.ok ? 0 : 1;
    if (
      !(await confirm(
        ctx,
        `Update member ${d.memberId ?? d.member} to ${d.newPeerUrl}${d.datastore === 'external-etcd' ? ` and restart etcd on ${d.host}` : ''}?`,
      ))
    ) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const r = await fixPeerUrl(cluster, d, {
      ssh,
      inventoryFile: ctx.global.inventory,
      onLine: printer(ctx),
    });
    if (ctx.global.json) json(ctx, { ...d, ...r });
    else {
      ctx.io.out(`health: ${r.summary}`);
      if (r.next) ctx.io.out(`next: ${r.next}`);
    }
    // K3s's embedded etcd is healthy again once the person restarts K3s (the `next` line).
    return r.updated && (r.healthy || d.datastore === 'k3s-embedded-etcd') ? 0 : 1;
  },
};

export const REPAIR_COMMANDS: Subcommand[] = [memberFixPeerUrlCommand];
