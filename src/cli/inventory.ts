/** `k3s-etcd inventory validate|show|init`. */
import { access, writeFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { renderColumns } from '../core/format/table';
import { tuningSummary } from '../core/inventory/etcdTuning';
import { formatProblem, loadInventoryFile, summarize } from '../core/inventory/parse';
import { STARTER_INVENTORY } from '../core/inventory/starter';
import { clientEndpoints, clientUrl, peerUrl, sshTarget } from '../core/inventory/select';
import { effectiveAlgorithm } from '../core/pki/set';
import {
  confirm,
  json,
  loadValid,
  missingInventoryMessage,
  selectCluster,
  type Subcommand,
} from './context';

export const INVENTORY_COMMANDS: Subcommand[] = [
  {
    name: 'inventory validate',
    summary: 'Check the inventory; exit 1 when it has errors',
    usage: 'k3s-etcd inventory validate [--inventory PATH] [--json]',
    async run(ctx) {
      const result = await loadInventoryFile(ctx.global.inventory);
      const label = (file: string) => relative(ctx.io.cwd, file) || file;
      const errors = result.problems.filter((p) => p.severity === 'error');
      if (result.status === 'missing' && !ctx.global.json) {
        ctx.io.err(`k3s-etcd: ${missingInventoryMessage(result.file)}`);
        return 1;
      }
      if (ctx.global.json) {
        json(ctx, {
          file: result.file,
          valid: result.status === 'ok',
          summary: result.status === 'ok' ? summarize(result.inventory) : undefined,
          problems: result.problems.map((p) => ({
            ...p,
            text:
              result.status === 'missing'
                ? missingInventoryMessage(result.file)
                : formatProblem(p, label(p.file)),
          })),
        });
      } else {
        for (const p of result.problems) ctx.io.err(formatProblem(p, label(p.file)));
        if (result.status === 'ok')
          ctx.io.out(`${label(result.file)}: valid (${summarize(result.inventory)})`);
        else ctx.io.err(`${label(result.file)}: ${errors.length} error(s)`);
      }
      return result.status === 'ok' ? 0 : 1;
    },
  },
  {
    name: 'inventory show',
    summary: 'Print clusters, hosts, roles and the derived etcd URLs',
    usage: 'k3s-etcd inventory show [--cluster NAME] [--json]',
    async run(ctx) {
      const inv = await loadValid(ctx);
      const clusters =
        ctx.global.cluster !== undefined ? [selectCluster(inv, ctx.global.cluster)] : inv.clusters;
      if (ctx.global.json) {
        json(ctx, {
          file: inv.file,
          clusters: clusters.map((c) => ({
            ...c,
            endpoints: clientEndpoints(c),
            hosts: c.hosts.map((h) => ({
              ...h,
              sshTarget: sshTarget(h),
              ...(h.roles.includes('etcd')
                ? { clientUrl: clientUrl(c, h), peerUrl: peerUrl(c, h) }
                : {}),
            })),
          })),
        });
        return 0;
      }
      const blocks = clusters.map((c) => {
        const head = `${c.name}  ${c.datastore}  etcd ${c.etcd.version}  pki ${relative(ctx.io.cwd, c.pki.dir) || c.pki.dir} (${c.pki.algorithm ?? `${effectiveAlgorithm(c)}, the default`})`;
        const rows = c.hosts.map((h) => [
          h.name,
          sshTarget(h),
          h.roles.join(','),
          h.roles.includes('etcd') ? h.memberName : '-',
          h.roles.includes('etcd') ? clientUrl(c, h) : '-',
          h.roles.includes('etcd') ? peerUrl(c, h) : '-',
        ]);
        const tuning = tuningSummary(c.etcd.tuning);
        const tuned = tuning.length > 0 ? `\n  etcd tuning: ${tuning.join(', ')}` : '';
        return `${head}${tuned}\n${renderColumns(['HOST', 'SSH', 'ROLES', 'MEMBER', 'CLIENT URL', 'PEER URL'], rows, '  ')}`;
      });
      ctx.io.out(blocks.join('\n\n'));
      return 0;
    },
  },
  {
    name: 'inventory init',
    summary: 'Write a commented starter inventory',
    usage: 'k3s-etcd inventory init [--inventory PATH] [--yes]',
    details: 'Refuses to replace an existing file unless confirmed (asks on a terminal, or --yes).',
    async run(ctx) {
      const file = ctx.global.inventory;
      const exists = await access(file).then(
        () => true,
        () => false,
      );
      if (
        exists &&
        !(await confirm(ctx, `${file} exists. Replace it with the starter inventory?`))
      ) {
        ctx.io.err('Left the existing inventory unchanged.');
        return 1;
      }
      await writeFile(file, STARTER_INVENTORY);
      ctx.io.out(
        `Wrote ${relative(ctx.io.cwd, file) || file}. Edit the hosts, then run: k3s-etcd inventory validate`,
      );
      return 0;
    },
  },
];
