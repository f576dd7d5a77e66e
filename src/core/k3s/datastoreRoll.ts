/**
 * New datastore client files rolled out to the K3s servers, one server at a time: each host's
 * plan is dry-run first (every server read before any changes); then, per server, its current
 * files are copied aside on the host (the rolling engine's rollback set), the new ones written,
 * K3s restarted and its node Ready before the next server goes. The first server that fails gets
 * its previous files back and K3s restarted on them; the servers after it are left untouched.
 * A certificate renewal (and a CA rotation's re-issue) runs the K3s side through here.
 */
import { errorMessage } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { K3S_DATASTORE_FILES } from '../k3sHost/datastoreFiles';
import {
  applyHostPlan,
  asHostRun,
  checkHostPlan,
  openAndPlan,
  type CheckedPlan,
  type HostRun,
  type HostTransport,
  type RunHooks,
} from '../plan/runner';
import { journalTail } from '../plan/snippets';
import { systemdGuard, type HostPlan } from '../plan/steps';
import { dropRollbackSet, restoreRollbackSet, takeRollbackSet } from '../rolling/backup';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote as q } from '../ssh/quote';
import {
  DATASTORE_STEP_IDS,
  datastoreFileSteps,
  type DatastoreClientFiles,
} from './datastoreSteps';
import { readK3sFacts } from './ops';
import { K3S_BIN, nodeName, type K3sFacts } from './server';

/** The datastore files only, K3s restarted when one changed, its node Ready again. */
export function planK3sDatastoreFiles(
  cluster: Cluster,
  host: Host,
  facts: K3sFacts,
  files: DatastoreClientFiles,
): HostPlan {
  const node = nodeName(host, facts);
  const { steps, payloads } = datastoreFileSteps(files);
  return {
    host: host.name,
    title: `K3s server ${host.name} of cluster ${cluster.name}: its datastore client files`,
    payloads,
    steps: [
      systemdGuard('K3s runs under systemd'),
      {
        kind: 'guard',
        id: 'installed',
        title: 'K3s is installed here (k3s.service)',
        check: 'systemctl cat k3s >/dev/null 2>&1',
        message: `"K3s is not installed on this host: install it first (k3s-etcd k3s install --host ${host.name.replace(/[^A-Za-z0-9._-]/g, '')})"`,
      },
      ...steps,
      {
        kind: 'service',
        id: 'service',
        title: 'k3s.service restarted on its new datastore files',
        unit: 'k3s',
        restartOn: [...DATASTORE_STEP_IDS],
      },
      {
        kind: 'wait',
        id: 'ready',
        title: `node ${node} is Ready (K3s reached the datastore with the new files)`,
        check: `${K3S_BIN} kubectl get node ${q(node)} --no-headers 2>/dev/null | awk '{print $2}' | grep -q '^Ready'`,
        seconds: 300,
        onTimeout: journalTail('k3s'),
        message: `"node ${node} did not become Ready in 300 s on the new datastore files: see the K3s log above (journalctl -u k3s)"`,
      },
    ],
  };
}

export interface DatastoreRollOptions extends RunHooks {
  ssh: SshContext;
  /** The K3s servers, in the order they go. */
  servers: Host[];
}

interface Prepared {
  host: Host;
  t?: HostTransport;
  checked?: CheckedPlan;
  /** Set when the host failed before or during its dry run. */
  run?: HostRun;
}

const PATHS = [K3S_DATASTORE_FILES.ca, K3S_DATASTORE_FILES.cert, K3S_DATASTORE_FILES.key];

/** Every server's plan dry-run (in parallel): the runs say what would change on each. */
async function prepareAll(
  cluster: Cluster,
  files: DatastoreClientFiles,
  opts: DatastoreRollOptions,
): Promise<Prepared[]> {
  return Promise.all(
    opts.servers.map(async (host) => {
      const p: Prepared = { host };
      const timings: Record<string, number> = {};
      const run = await asHostRun(host.name, opts, timings, async () => {
        const opened = await openAndPlan(
          {
            host: host.name,
            open: sshOpener(cluster, host, opts.ssh),
            plan: async (t, signal) =>
              planK3sDatastoreFiles(cluster, host, await readK3sFacts(t, host, signal), files),
          },
          opts,
          timings,
        );
        p.t = opened.t;
        p.checked = await checkHostPlan(opened.t, opened.plan, opts, timings);
        return p.checked.run;
      });
      if (run.status === 'failed' || run.status === 'cancelled') p.run = run;
      return p;
    }),
  );
}

/**
 * Dry run (`dryRun`): every server's would-change, nothing written. Otherwise one server at a
 * time, each with its previous files kept aside and put back if it fails; the first failure
 * stops the rest ("not started").
 */
export async function rollK3sDatastoreFiles(
  cluster: Cluster,
  files: DatastoreClientFiles,
  opts: DatastoreRollOptions & { dryRun: boolean },
): Promise<HostRun[]> {
  const prepared = await prepareAll(cluster, files, opts);
  try {
    if (opts.dryRun) return prepared.map((p) => p.run ?? (p.checked as CheckedPlan).run);
    const runs: HostRun[] = [];
    let stopped: string | undefined;
    for (const p of prepared) {
      const name = p.host.name;
      const say = (line: string) => opts.onLine?.(name, line);
      if (stopped || opts.signal?.aborted) {
        const why = stopped ?? 'cancelled';
        const message = `${name}: not started: ${why}`;
        say(message);
        runs.push({
          host: name,
          status: stopped ? 'failed' : 'cancelled',
          steps: [],
          error: { ...(stopped ? {} : { code: 'cancelled' as const }), message },
          timings: {},
        });
        continue;
      }
      if (p.run || !p.checked || !p.t) {
        runs.push(p.run as HostRun);
        stopped = `${name} could not be read first (one K3s server at a time)`;
        continue;
      }
      if (p.checked.run.status !== 'would-change') {
        runs.push(p.checked.run);
        continue;
      }
      runs.push(await oneServer(p, opts, say));
      const last = runs.at(-1) as HostRun;
      if (last.status === 'failed' || last.status === 'cancelled')
        stopped = `the K3s rollout stopped at ${name}, which failed`;
    }
    return runs;
  } finally {
    for (const p of prepared) p.t?.close();
  }
}

async function oneServer(
  p: Prepared,
  opts: RunHooks,
  say: (line: string) => void,
): Promise<HostRun> {
  const name = p.host.name;
  const t = p.t as HostTransport;
  const checked = p.checked as CheckedPlan;
  let set;
  try {
    set = await takeRollbackSet(t, name, PATHS, 'k3s', opts.signal);
  } catch (err) {
    const message = errorMessage(err);
    say(message);
    return { host: name, status: 'failed', steps: [], error: { message }, timings: {} };
  }
  say(`    kept a copy of ${set.paths.length} file(s) in ${set.folder} (put back if K3s fails)`);
  const run = await asHostRun(name, opts, checked.run.timings, () =>
    applyHostPlan(t, checked, opts),
  );
  if (run.status !== 'failed' && run.status !== 'cancelled') {
    await dropRollbackSet(t, set);
    return run;
  }
  say(`${run.error?.message ?? 'failed'}: putting its previous files back`);
  let after: string;
  try {
    await restoreRollbackSet(t, name, set, say);
    after = 'its previous datastore files were put back and K3s restarted on them';
    await dropRollbackSet(t, set);
  } catch (err) {
    after = errorMessage(err);
  }
  say(`    ${after}`);
  return {
    ...run,
    status: 'failed',
    error: { ...run.error, message: `${run.error?.message ?? `${name}: failed`} (${after})` },
  };
}
