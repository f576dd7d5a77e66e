/**
 * Whether etcd is set up on a cluster's member hosts, asked of the hosts themselves: one short
 * read-only command per host (no root: the unit file is world-readable) that says whether etcd's
 * unit (`UNIT_FILE`) is there. The front end runs it only when the person acts (a health panel
 * opened, Refresh) and with prompts that never ask, so a host that needs a password counts as
 * unread, never as "no unit". What it finds goes into the cluster's history (provisioned.ts).
 */
import { errorMessage, K3sEtcdError } from '../errors';
import { UNIT_FILE } from '../etcd/memberHost';
import { etcdHosts } from '../inventory/select';
import type { Cluster } from '../inventory/types';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote as q } from '../ssh/quote';
import type { UnitLook } from './provisioned';

/** The one command each host runs: a line that says whether the unit file is there. */
export const UNIT_LOOK_COMMAND = `if [ -f ${q(UNIT_FILE)} ]; then echo k3s-etcd-unit=present; else echo k3s-etcd-unit=absent; fi`;

/** One host's answer: `present` when it was read, `why` when it was not. */
export interface HostUnit {
  host: string;
  present?: boolean;
  why?: string;
}

/** The host's output, hostile input: exactly one of the two lines, or nothing is concluded. */
export function parseUnitAnswer(stdout: string): boolean | undefined {
  const lines = stdout.split(/\r?\n/).filter((l) => l.startsWith('k3s-etcd-unit='));
  if (lines.length !== 1) return undefined;
  if (lines[0] === 'k3s-etcd-unit=present') return true;
  if (lines[0] === 'k3s-etcd-unit=absent') return false;
  return undefined;
}

/** Short words for the SSH failures a look meets; what would have needed asking is said as such. */
const WHY: Partial<Record<string, string>> = {
  'ssh-auth': 'SSH needs a password or a key passphrase, which a refresh never asks for',
  'ssh-host-key-unknown': 'its SSH host key is not known yet, which a refresh never asks to trust',
  'ssh-host-key-changed': 'its SSH host key does not match known_hosts',
  'ssh-host-key-revoked': 'its SSH host key is revoked in known_hosts',
  'ssh-refused': 'SSH refused the connection',
  'ssh-timeout': 'no SSH answer in time',
  'ssh-unreachable': 'unreachable',
  'ssh-dns': 'its address does not resolve',
};

/** Why a host could not be read, short (the tooltip and the panel list every host's). */
export function unreadWhy(err: unknown): string {
  const known = err instanceof K3sEtcdError ? WHY[err.code] : undefined;
  if (known) return known;
  const first = errorMessage(err).split('\n')[0] ?? '';
  return (first.length > 120 ? `${first.slice(0, 120)}…` : first) || 'failed';
}

/** Asks every member host of `cluster` at once; never throws (a failure is that host's answer). */
export async function lookForUnit(
  cluster: Cluster,
  ssh: SshContext,
  signal?: AbortSignal,
): Promise<HostUnit[]> {
  return Promise.all(
    etcdHosts(cluster).map(async (host): Promise<HostUnit> => {
      try {
        const session = await sshOpener(cluster, host, ssh)(signal);
        try {
          const r = await session.exec(UNIT_LOOK_COMMAND, signal ? { signal } : {});
          const present = r.code === 0 ? parseUnitAnswer(r.stdout) : undefined;
          return present === undefined
            ? { host: host.name, why: `unexpected answer (exit ${r.code})` }
            : { host: host.name, present };
        } finally {
          session.close();
        }
      } catch (err) {
        return { host: host.name, why: unreadWhy(err) };
      }
    }),
  );
}

/**
 * The answers as the history keeps them: `seen` when any host has the unit (set up, from here or
 * elsewhere), otherwise the look, with the hosts that could not be read.
 */
export function unitLookOf(
  answers: readonly HostUnit[],
  at: Date,
): { seen: boolean; look: UnitLook } {
  return {
    seen: answers.some((a) => a.present === true),
    look: {
      at: at.toISOString(),
      unread: answers
        .filter((a) => a.present === undefined)
        .map((a) => ({ host: a.host, why: a.why ?? 'not read' })),
    },
  };
}
