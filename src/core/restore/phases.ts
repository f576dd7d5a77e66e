/**
 * One member host's restore as four scripts, one per phase: prepare (upload and check, nothing
 * stopped), stop, restore (into a new data dir), start (the restored dir put in place, the old
 * one kept). Each phase's steps are built by a function of their own.
 */
import { basename, dirname } from 'node:path';
import { K3sEtcdError } from '../errors';
import {
  BIN_DIR,
  ENV_FILE,
  MARKER,
  UNIT_FILE,
  checkDataDir,
  envLine,
  markerText,
  readFacts,
  withInitialLines,
  type HostFacts,
} from '../etcd/memberHost';
import { restoreBumps, restoreCommands } from '../etcd/snapshotFile';
import { initialClusterOf, peerUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import type { HostTransport } from '../plan/runner';
import { ETCD_EXITS, FREE_MB, dq, journalTail, spaceCheck } from '../plan/snippets';
import { fileStep, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import { shellQuote as q } from '../ssh/quote';
import {
  PHASE_TITLES,
  RESTORE_DIR,
  chooseTool,
  type RestoreMember,
  type RestorePhase,
  type RestorePlan,
  type RestoreTool,
} from './plan';

/** Shared with the quorum recovery: it lives beside the env file's other helpers. */
export { withInitialLines } from '../etcd/memberHost';

/** What the plan needs to know of a host, read over SSH (only reads). */
export interface RestoreHostFacts {
  facts: HostFacts;
  /** The env file's text. */
  env: string;
  /** Folder of the installed etcd (its etcdctl/etcdutl are there). */
  binDir: string;
  /** etcdctl / etcdutl found there. */
  tools: string[];
}

/** The host's script per phase. */
export type RestoreHostPlans = Record<RestorePhase, HostPlan>;

const kb = (bytes: number) => Math.ceil(bytes / 1024);

/** What every phase of one host is built from. */
interface PhaseInput {
  cluster: Cluster;
  plan: RestorePlan;
  m: RestoreMember;
  tool: RestoreTool;
  binDir: string;
  /** The restore command for this member. */
  command: string;
  /** The env file with its ETCD_INITIAL_* lines for the restored data. */
  env: string;
}

/** Prepare: nothing is stopped; the host is checked and the snapshot uploaded and checked. */
function prepareSteps({ plan, m, tool, binDir }: PhaseInput): Step[] {
  const data = m.dataDir;
  const snapshotKb = kb(plan.snapshot.bytes);
  return [
    systemdGuard('the restore stops and starts etcd with systemctl'),
    {
      kind: 'guard',
      id: 'unit',
      title: `etcd runs under systemd here (${UNIT_FILE})`,
      check: `[ -f ${UNIT_FILE} ]`,
      message: `"there is no ${UNIT_FILE}: etcd was not provisioned on this host by k3s-etcd (provision etcd first)"`,
    },
    {
      kind: 'guard',
      id: 'tool',
      title: `${tool} ${binDir}/${tool} restores the snapshot`,
      check: `[ -x ${q(`${binDir}/${tool}`)} ]`,
      message: `"${dq(`${binDir}/${tool}`)} is missing"`,
    },
    {
      kind: 'guard',
      id: 'not-mounted',
      title: `${data} is a folder that can be moved aside (not a mount point)`,
      check: `{ ! command -v mountpoint >/dev/null 2>&1; } || ! mountpoint -q ${q(data)}`,
      message: `"${dq(data)} is a mount point: the restore keeps the old data by renaming the data dir, which a mount point cannot be. Point etcd.dataDir at a folder inside the mount (and move the data there), or restore by hand with the commands of k3s-etcd snapshot restore-commands"`,
    },
    {
      kind: 'guard',
      id: 'space-data',
      // The restored member: the database and a preallocated 64 MB WAL file, plus room to spare.
      title: `${Math.ceil((snapshotKb + 81_920) / 1024)} MB free beside ${data} for the restored data`,
      check: spaceCheck(dirname(data), snapshotKb + 81_920),
      message: `"only ${FREE_MB} MB free under $p: the restored data needs ${Math.ceil((snapshotKb + 81_920) / 1024)} MB"`,
    },
    {
      kind: 'guard',
      id: 'space-upload',
      title: `${Math.ceil((2 * snapshotKb) / 1024) + 1} MB free for the upload (${RESTORE_DIR} and /tmp)`,
      check: `[ -f ${q(m.upload)} ] || { ${spaceCheck(RESTORE_DIR, snapshotKb)} && ${spaceCheck('/tmp', snapshotKb)}; }`,
      message: `"only ${FREE_MB} MB free under $p: the snapshot is ${Math.ceil(snapshotKb / 1024)} MB"`,
    },
    {
      kind: 'dir',
      id: 'restore-dir',
      title: `${RESTORE_DIR} (0700, root)`,
      path: RESTORE_DIR,
      mode: 0o700,
      owner: 'root',
      group: 'root',
    },
    {
      kind: 'file',
      id: 'upload',
      title: `snapshot ${m.upload} (0600, root; ${plan.snapshot.bytes} bytes)`,
      path: m.upload,
      mode: 0o600,
      owner: 'root',
      group: 'root',
      sha256: plan.snapshot.sha256,
      source: { payload: 'snapshot.db' },
    },
    {
      kind: 'guard',
      id: 'uploaded',
      title: `the uploaded snapshot's SHA-256 is the record's (${plan.snapshot.sha256.slice(0, 12)}…)`,
      // A dry run uploads nothing: the upload step above says whether it would.
      check: `[ "$DRY_RUN" = 1 ] || [ "$(sha256sum ${q(m.upload)} | cut -d' ' -f1)" = ${plan.snapshot.sha256} ]`,
      message: `"the snapshot uploaded to ${dq(m.upload)} has SHA-256 $(sha256sum ${q(m.upload)} | cut -d' ' -f1), not ${plan.snapshot.sha256}: the upload was damaged; run the restore again"`,
    },
  ];
}

/** Stop: etcd stopped (every member stops before any restore). */
function stopSteps(): Step[] {
  return [
    {
      kind: 'command',
      id: 'stop',
      title: 'stop etcd (every member stops before any restore)',
      check: `case "$(systemctl show -p ActiveState --value etcd 2>/dev/null)" in inactive | failed | '') true ;; *) false ;; esac`,
      run: [
        'systemctl stop etcd || fail "systemctl stop etcd failed"',
        `if systemctl is-active -q etcd; then fail "etcd is still active after systemctl stop"; fi`,
      ].join('\n'),
    },
  ];
}

/** Restore: the snapshot restored into a new data dir, nothing replaced. */
function restoreSteps({ plan, m, tool, command }: PhaseInput): Step[] {
  return [
    {
      kind: 'command',
      id: 'restore',
      title: `${tool} snapshot restore into ${m.restoredDir} (member ${m.member}, token ${plan.token})`,
      check: 'false',
      run: [
        `if systemctl is-active -q etcd; then fail "etcd is running: the restore needs every member stopped"; fi`,
        `rm -rf ${q(m.restoredDir)}`,
        `${command} 2>&1 || { rm -rf ${q(m.restoredDir)}; fail "${tool} snapshot restore failed: its output is above"; }`,
        `[ -d ${q(`${m.restoredDir}/member`)} ] || fail "${dq(m.restoredDir)} holds no member after the restore"`,
      ].join('\n'),
    },
  ];
}

/** Start: the old data dir kept aside, the restored one in place, etcd started. */
function startSteps({ cluster, plan, m, env }: PhaseInput): Step[] {
  const data = m.dataDir;
  const journal = journalTail('etcd');
  return [
    {
      kind: 'command',
      id: 'aside',
      title: `move ${data} aside to ${m.keptAs} (kept, never deleted)`,
      check: `[ ! -e ${q(data)} ]`,
      run: [
        `[ ! -e ${q(m.keptAs)} ] || fail "${dq(m.keptAs)} already exists: not moving ${dq(data)} over it"`,
        `mv ${q(data)} ${q(m.keptAs)} || fail "cannot move ${dq(data)} aside"`,
      ].join('\n'),
    },
    {
      kind: 'command',
      id: 'place',
      title: `put ${m.restoredDir} in place as ${data} (owner etcd, 0700)`,
      check: 'false',
      run: [
        `[ -d ${q(`${m.restoredDir}/member`)} ] || fail "${dq(m.restoredDir)} holds no restored member"`,
        `[ ! -e ${q(data)} ] || fail "${dq(data)} is still there"`,
        `mv ${q(m.restoredDir)} ${q(data)}`,
        `chown -R etcd:etcd ${q(data)}`,
        `chmod 0700 ${q(data)}`,
      ].join('\n'),
    },
    fileStep({
      id: 'marker',
      title: `cluster marker ${data}/${MARKER}`,
      path: `${data}/${MARKER}`,
      content: markerText(cluster),
      mode: 0o600,
      owner: 'etcd',
    }),
    fileStep({
      id: 'env',
      title: `${ENV_FILE}: ETCD_INITIAL_CLUSTER_TOKEN=${plan.token}, ETCD_INITIAL_CLUSTER_STATE=existing`,
      path: ENV_FILE,
      content: env,
      mode: 0o600,
      backup: true,
    }),
    {
      kind: 'command',
      id: 'start',
      title: 'start etcd',
      check: 'false',
      run: 'systemctl reset-failed etcd 2>/dev/null || true\nsystemctl start --no-block etcd || fail "systemctl start etcd failed"',
    },
    {
      kind: 'wait',
      id: 'active',
      title: 'etcd is active (the members wait for each other)',
      check: 'systemctl is-active -q etcd',
      seconds: 90,
      onTimeout: journal,
      message: `"etcd did not become active within 90 s on the restored data (the last lines of journalctl -u etcd are above); the old data is kept at ${dq(m.keptAs)}"`,
      crashLoop: {
        unit: 'etcd',
        times: ETCD_EXITS,
        message: `"etcd exited ${ETCD_EXITS} times on the restored data (the last lines of journalctl -u etcd are above); the old data is kept at ${dq(m.keptAs)}"`,
      },
    },
    {
      kind: 'command',
      id: 'cleanup',
      title: `remove the uploaded copy ${m.upload}`,
      check: `[ ! -e ${q(m.upload)} ]`,
      run: `rm -f ${q(m.upload)}`,
    },
  ];
}

/** One member host's four scripts. Pure: the host was read into `read` before. */
export function restoreHostPlans(
  cluster: Cluster,
  plan: RestorePlan,
  host: Host,
  read: RestoreHostFacts,
): RestoreHostPlans {
  const m = plan.members.find((x) => x.host === host.name);
  if (!m) throw new K3sEtcdError('usage', `${host.name} is not an etcd member of ${plan.cluster}`);
  checkDataDir({ ...cluster, etcd: { ...cluster.etcd, dataDir: m.dataDir } });
  const version = read.facts.etcdVersion ?? cluster.etcd.version;
  const chosen = chooseTool(version, read.tools, read.binDir);
  if ('error' in chosen) throw new K3sEtcdError('restore-refused', `${host.name}: ${chosen.error}`);
  // Generated for the whole cluster: every member is restored with the same --initial-cluster.
  const cmd = restoreCommands(cluster, m.upload, {
    token: plan.token,
    tool: chosen.tool,
    binDir: read.binDir,
    dataDirOf: () => m.restoredDir,
    // The host's own tool decides: etcdutl 3.5.10+ bumps, an older one restores as it is.
    ...(plan.bumpRevision && restoreBumps(version, chosen.tool)
      ? { bumpRevision: plan.bumpRevision }
      : {}),
    ...(plan.skipHashCheck ? { skipHashCheck: true } : {}),
  }).find((c) => c.host === host.name);
  const command = cmd?.command ?? '';
  const title = (what: string) =>
    `k3s-etcd: restore ${plan.cluster} from ${basename(plan.file)}, ${what}, on ${host.name} (${host.address})`;
  const input: PhaseInput = {
    cluster,
    plan,
    m,
    tool: chosen.tool,
    binDir: read.binDir,
    command,
    env: withInitialLines(read.env, [
      envLine('ETCD_INITIAL_ADVERTISE_PEER_URLS', peerUrl(cluster, host)),
      envLine('ETCD_INITIAL_CLUSTER', initialClusterOf(cluster)),
      envLine('ETCD_INITIAL_CLUSTER_TOKEN', plan.token),
      'ETCD_INITIAL_CLUSTER_STATE=existing',
    ]),
  };

  const hostPlan = (phase: RestorePhase, steps: Step[]): HostPlan => ({
    host: host.name,
    title: title(PHASE_TITLES[phase]),
    steps,
    payloads:
      phase === 'prepare'
        ? [
            {
              name: 'snapshot.db',
              localPath: plan.file,
              sha256: plan.snapshot.sha256,
              step: 'upload',
            },
          ]
        : [],
  });
  return {
    prepare: hostPlan('prepare', prepareSteps(input)),
    stop: hostPlan('stop', stopSteps()),
    restore: hostPlan('restore', restoreSteps(input)),
    start: hostPlan('start', startSteps(input)),
  };
}

/** Reads what the plan needs from one host (facts, env file, tools). */
export async function readRestoreFacts(
  t: HostTransport,
  cluster: Cluster,
  host: Host,
  signal?: AbortSignal,
): Promise<RestoreHostFacts> {
  const facts = await readFacts(t, cluster, host, signal);
  const env = await t.exec(`cat ${ENV_FILE}`, { sudo: true, ...(signal ? { signal } : {}) });
  if (env.code !== 0) {
    throw new K3sEtcdError(
      'restore-refused',
      `${host.name}: cannot read ${ENV_FILE} (${env.stderr.trim() || `exit ${env.code}`}): etcd was not provisioned there by k3s-etcd; provision etcd first.`,
    );
  }
  const binDir = facts.etcdPath ? dirname(facts.etcdPath) : BIN_DIR;
  const tools = await t.exec(
    `for b in etcdctl etcdutl; do if [ -x ${q(binDir)}/$b ]; then echo "$b"; fi; done`,
    signal ? { signal } : {},
  );
  return {
    facts,
    env: env.stdout,
    binDir,
    tools: tools.stdout.split('\n').filter((l) => l === 'etcdctl' || l === 'etcdutl'),
  };
}

/** A member host during a restore: its session and its scripts. */
export interface RestoreTarget {
  host: Host;
  t: HostTransport;
  plans: RestoreHostPlans;
}
