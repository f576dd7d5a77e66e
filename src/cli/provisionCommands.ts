/** `k3s-etcd provision etcd`, `k3s-etcd member add|remove`: the hosts, over SSH. */
import { renderColumns } from '../core/format/table';
import { peerUrl, selectHosts } from '../core/inventory/select';
import { addMember, removeMember } from '../core/provision/members';
import { provisionEtcd } from '../core/provision/provision';
import type { SshContext } from '../core/ssh/hostSession';
import { summarizeRun, type HostRun } from '../core/plan/runner';
import { diagnosePeerUrl, fixPeerUrl } from '../core/repair/peerUrl';
import { loadSshEnvironment } from '../core/ssh/target';
import {
  confirm,
  json,
  loadValid,
  selectCluster,
  UsageError,
  type Options,
  type RunContext,
  type Subcommand,
} from './context';

export const SSH_OPTIONS: Options = {
  'accept-new-host-keys': { type: 'boolean', default: false },
  'dry-run': { type: 'boolean', default: false },
};

export const SSH_HELP = `SSH: keys from ssh-agent, the host's identityFile and ~/.ssh/config; passphrases, passwords
and sudo passwords are asked on the terminal one question at a time, never echoed and never
stored. Host keys are checked against your known_hosts (~/.ssh/known_hosts, or UserKnownHostsFile)
and the cluster's knownHostsFile, which may add hosts but never replace a key yours knows; an
unknown key is asked about (or accepted and recorded with --accept-new-host-keys), a changed key
is always refused.`;

export async function sshContext(ctx: RunContext): Promise<SshContext> {
  const acceptNew = ctx.values['accept-new-host-keys'] === true;
  return {
    env: await loadSshEnvironment(),
    prompts: {
      secret: async (req) => {
        if (!ctx.io.interactive) return undefined;
        return ctx.io.askSecret(`${req.attempt > 1 ? 'Wrong, try again. ' : ''}${req.prompt}: `);
      },
      unknownHostKey: async (k) => {
        const where = k.port === 22 ? k.host : `[${k.host}]:${k.port}`;
        const about = `The authenticity of host ${where} can't be established.\n${k.keyType} key fingerprint is ${k.fingerprint}.`;
        if (acceptNew) {
          ctx.io.err(
            `${about}\nAccepted (--accept-new-host-keys) and recorded in ${k.knownHostsFile}.`,
          );
          return true;
        }
        if (!ctx.io.interactive) return false;
        // One question with its fingerprint: questions wait their turn, so hosts connecting in
        // parallel never show one host's fingerprint above another host's question.
        const a = (
          await ctx.io.ask(`${about}\nTrust it and record it in ${k.knownHostsFile}? [y/N] `)
        ).trim();
        return /^y(es)?$/i.test(a);
      },
    },
  };
}

/** Streams lines as `[host] line`; whole lines only, so parallel hosts never interleave mid-line. */
export function printer(ctx: RunContext) {
  return (host: string, line: string) => {
    if (!ctx.global.json) ctx.io.out(`[${host}] ${line}`);
  };
}

export function stepTable(runs: HostRun[]): string {
  const rows = runs.flatMap((r) => r.steps.map((s) => [r.host, `${s.n}`, s.status, s.title]));
  return renderColumns(['HOST', 'STEP', 'STATUS', 'WHAT'], rows);
}

export function report(
  ctx: RunContext,
  runs: HostRun[],
  extra: Record<string, unknown> = {},
): number {
  const failed = runs.filter((r) => r.status === 'failed' || r.status === 'cancelled');
  if (ctx.global.json) json(ctx, { ...extra, hosts: runs });
  else {
    ctx.io.out('');
    for (const r of runs) ctx.io.out(summarizeRun(r));
  }
  return failed.length > 0 ? 1 : 0;
}

/**
 * After a dry run: shows what would change and asks. Returns the exit code when the run ends
 * here (--dry-run, a failed host, nothing to do, or "no"), undefined to go on and apply.
 */
export async function previewGate(
  ctx: RunContext,
  runs: HostRun[],
  words: { nothing: string; question: (changes: number, hosts: string[]) => string },
): Promise<number | undefined> {
  if (
    ctx.values['dry-run'] === true ||
    runs.some((r) => r.status === 'failed' || r.status === 'cancelled')
  ) {
    if (!ctx.global.json) ctx.io.out(stepTable(runs));
    return report(ctx, runs, { dryRun: true });
  }
  const pending = runs.filter((r) => r.status === 'would-change');
  if (pending.length === 0) {
    if (!ctx.global.json) ctx.io.out(words.nothing);
    return report(ctx, runs);
  }
  const changing = pending.map((r) => ({
    ...r,
    steps: r.steps.filter((s) => s.status === 'would-change'),
  }));
  if (!ctx.global.json) ctx.io.out(stepTable(changing));
  const n = changing.reduce((a, r) => a + r.steps.length, 0);
  if (
    !(await confirm(
      ctx,
      words.question(
        n,
        pending.map((r) => r.host),
      ),
    ))
  ) {
    ctx.io.err('Nothing changed.');
    return 1;
  }
  return undefined;
}

const provisionEtcdCommand: Subcommand = {
  name: 'provision etcd',
  summary: 'Install etcd with mutual TLS under systemd on the member hosts, over SSH',
  usage: 'k3s-etcd provision etcd [--host NAME]... [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `Runs the plan on every etcd host of the cluster in parallel (or only --host ones): the etcd
user, the binaries (etcd.install: download | upload | installed), /etc/etcd/pki with the
member's certificates, the data dir, /etc/etcd/etcd.env and the systemd unit, then start and
wait until healthy. First shows what would change and asks (--yes to skip); --dry-run only
shows it. A re-run changes nothing when everything is in place. Exit 1 when a host fails.

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

const memberAddCommand: Subcommand = {
  name: 'member add',
  summary: 'Add a host of the inventory to the running etcd cluster, then provision it',
  usage: 'k3s-etcd member add HOST [--dry-run] [--accept-new-host-keys] [--yes]',
  details: `HOST must be in k3s-etcd.yaml with the etcd role and have its certificates (k3s-etcd certs
generate). Runs \`member add\` through a healthy member first, then provisions the host with
--initial-cluster-state existing.

${SSH_HELP}`,
  options: SSH_OPTIONS,
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member add needs the HOST to add');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const [host] = selectHosts(cluster, [name]);
    if (!host) throw new UsageError(`no host ${name}`);
    const dryRun = ctx.values['dry-run'] === true;
    if (
      !dryRun &&
      !(await confirm(
        ctx,
        `Add ${host.memberName} (${peerUrl(cluster, host)}) to etcd cluster ${cluster.name}?`,
      ))
    ) {
      ctx.io.err('Nothing changed.');
      return 1;
    }
    const result = await addMember(cluster, host.name, {
      dryRun,
      ssh: await sshContext(ctx),
      onLine: printer(ctx),
    });
    if (dryRun && !ctx.global.json) ctx.io.out(stepTable(result.runs));
    const code = report(ctx, result.runs, { memberId: result.memberId, healthy: result.healthy });
    return code === 0 && result.healthy !== false ? 0 : 1;
  },
};

const memberRemoveCommand: Subcommand = {
  name: 'member remove',
  summary: 'Remove a member from the etcd cluster, then stop and disable its unit',
  usage: 'k3s-etcd member remove MEMBER [--purge-data] [--dry-run] [--yes]',
  details: `Refuses when removing the member would lose quorum. The member's data dir is moved aside
(<dataDir>.removed-<time>) unless --purge-data deletes it (asked separately, naming the path).

${SSH_HELP}`,
  options: { ...SSH_OPTIONS, 'purge-data': { type: 'boolean', default: false } },
  maxArgs: 1,
  async run(ctx) {
    const name = ctx.args[0];
    if (!name) throw new UsageError('member remove needs the MEMBER (host or member name)');
    const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
    const dryRun = ctx.values['dry-run'] === true;
    const purge = ctx.values['purge-data'] === true;
    if (!dryRun) {
      if (
        !(await confirm(
          ctx,
          `Remove member ${name} from etcd cluster ${cluster.name} and stop etcd on it?`,
        ))
      ) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
      if (purge && !(await confirm(ctx, `Delete ${cluster.etcd.dataDir} on ${name} for good?`))) {
        ctx.io.err('Nothing changed.');
        return 1;
      }
    }
    const r = await removeMember(cluster, name, {
      dryRun,
      purgeData: purge,
      ssh: await sshContext(ctx),
      onLine: printer(ctx),
    });
    if (ctx.global.json) json(ctx, r);
    return 0;
  },
};

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
        d.steps.forEach((s, i) => ctx.io.out(`  ${i + 1}. ${s}`));
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

export const PROVISION_COMMANDS: Subcommand[] = [
  provisionEtcdCommand,
  memberAddCommand,
  memberRemoveCommand,
  memberFixPeerUrlCommand,
];
