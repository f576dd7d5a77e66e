/**
 * Restores a snapshot saved by `saveSnapshot` onto every etcd host of the inventory, over SSH, as
 * etcd documents it, with the provisioning machinery (per-host plans rendered to POSIX scripts,
 * a dry run before every real run, step markers):
 *
 * 1. the snapshot's SHA-256 and size are checked against its `.json` record (nothing is touched
 *    on any host when they differ), and every host is reached and read before anything changes;
 * 2. prepare (nothing stopped yet): upload it to each host (0600 root) and check its SHA-256 there;
 * 3. stop etcd on EVERY member (if one cannot be stopped, etcd is started again everywhere);
 * 4. restore it on every host into `<dataDir>.restored` with that member's name and peer URL and
 *    a new cluster token, with the host's installed etcdutl (etcd ≥ 3.5) or etcdctl (3.4); if it
 *    fails anywhere, the restored dirs are removed and etcd starts again on its old data;
 * 5. on every host: the old data dir moved aside to `<dataDir>.before-restore-<UTC time>` (never
 *    deleted), the restored one put in place (owner etcd, 0700, the cluster marker), the env
 *    file's ETCD_INITIAL_* lines made to say what the data now is (the new token, state
 *    `existing`; etcd reads them only on a first start, and provisioning keeps them once a member
 *    has data), then etcd started and waited for;
 * 6. wait until every member answers healthy, and compare the revision served with the snapshot's.
 *
 * A dry run runs every phase's script with DRY_RUN=1: it only reads the hosts.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { CancelledError, K3sEtcdError, errorMessage, isCancelled } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import { clientUrl, etcdHosts, peerUrl, k3sServers, initialClusterOf } from '../inventory/select';
import { backupStamp } from '../k3s/backup';
import {
  BIN_DIR,
  ENV_FILE,
  checkDataDir,
  envLine,
  MARKER,
  UNIT_FILE,
  markerText,
  type HostFacts,
  readFacts,
} from './memberHost';
import { waitHealthy } from './health';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { fileStep, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import { FREE_MB, dq, journalTail as journalLines, spaceCheck } from '../plan/snippets';
import { runHostPlan, type HostRun, type HostTransport, type RunHooks } from '../plan/runner';
import { shellQuote as q } from '../ssh/quote';
import { createEndpointClient, type EtcdTls } from './client';
import { connectionFor, healthyClient } from './connection';
import {
  SNAPSHOT_NAME,
  etcdMinor,
  restoreCommands,
  snapshotInfo,
  snapshotRecordProblem,
  type SnapshotInfo,
} from './snapshot';

/** Where snapshots are uploaded on the hosts. */
export const RESTORE_DIR = '/var/lib/k3s-etcd/restore';

export type RestoreTool = 'etcdutl' | 'etcdctl';

export interface RestoreMember {
  host: string;
  member: string;
  address: string;
  /** The snapshot's copy on the host. */
  upload: string;
  /** The member's data dir (the inventory's etcd.dataDir). */
  dataDir: string;
  /** Where etcd's restore writes before it is put in place. */
  restoredDir: string;
  /** Where the old data dir is kept. */
  keptAs: string;
  /** The restore command as planned (the tool in /usr/local/bin; the host may choose etcdctl). */
  command: string;
}

export interface RestorePlan {
  cluster: string;
  /** Absolute path of the snapshot on this machine. */
  file: string;
  /** Its record, checked against the file. */
  snapshot: SnapshotInfo;
  /** UTC time naming the kept data dirs and the token. */
  stamp: string;
  /** The new cluster token every member is restored with. */
  token: string;
  tool: RestoreTool;
  members: RestoreMember[];
  /** The restore in words, in the order it runs (what a confirmation shows). */
  steps: string[];
  /** K3s servers that use this etcd (to restart once it is restored). */
  k3sServers: string[];
}

export type RestorePhase = 'prepare' | 'stop' | 'restore' | 'start';

export const PHASE_TITLES: Record<RestorePhase, string> = {
  prepare: 'upload the snapshot and check every host (nothing is stopped yet)',
  stop: 'stop etcd on every member',
  restore: 'restore the snapshot on every member into a new data dir',
  start: 'put the restored data dirs in place and start etcd on every member',
};

export interface RestoreOptions extends RunHooks {
  ssh: SshContext;
  dryRun: boolean;
  /** A plan made before (the one the person confirmed); default: planned now. */
  plan?: RestorePlan;
  /** A phase starts (for headers in the output). */
  onPhase?(phase: RestorePhase, n: number, title: string): void;
  /** Seconds to wait for every member to answer healthy after the start (default 90). */
  healthySeconds?: number;
}

export interface RestoreResult {
  plan: RestorePlan;
  dryRun: boolean;
  /** Each phase that ran, with every host's run (a dry run: every phase, only read). */
  phases: { phase: RestorePhase; runs: HostRun[] }[];
  /** Every member restored and started (not set for a dry run). */
  restored?: boolean;
  healthy?: boolean;
  healthSummary?: string;
  /** The revision a member serves after the restore. */
  revision?: string;
  /** The old data dir of each host, kept. */
  kept: { host: string; path: string }[];
}

const recordFileOf = (file: string) => file.replace(/\.db$/, '.json');

async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    createReadStream(file)
      .on('data', (d) => {
        hash.update(d);
        bytes += (d as Buffer).byteLength;
      })
      .on('error', reject)
      .on('end', () => resolve());
  });
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Reads the snapshot's record and checks the file against it (SHA-256 and size) and against the
 * cluster; throws `snapshot-invalid` naming what differs.
 */
export async function verifySnapshot(cluster: Cluster, file: string): Promise<SnapshotInfo> {
  if (!SNAPSHOT_NAME.test(basename(file))) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${JSON.stringify(basename(file))} is not named as k3s-etcd names snapshots (the UTC time it was saved, such as 20250102T030405Z.db, under backups/${cluster.name}/ with its .json record): only snapshots saved by \`k3s-etcd snapshot save\` are restored. Nothing was done on any host.`,
    );
  }
  const recordFile = recordFileOf(file);
  let record: unknown;
  try {
    record = JSON.parse(await readFile(recordFile, 'utf8'));
  } catch (err) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${file} has no readable record beside it (${recordFile}: ${errorMessage(err)}): only snapshots saved by \`k3s-etcd snapshot save\` (or "Save etcd Snapshot") are restored, after their SHA-256 is checked against the record. Nothing was done on any host.`,
      { cause: err },
    );
  }
  const problem = snapshotRecordProblem(record, cluster.name);
  if (problem) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${recordFile} is not the record of a snapshot of ${cluster.name}: ${problem}. Restoring it is refused; nothing was done on any host.`,
    );
  }
  const info = snapshotInfo(record as SnapshotInfo, file);
  const st = await lstat(file).catch((err: unknown) => {
    throw new K3sEtcdError('snapshot-invalid', `Cannot read ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  });
  if (!st.isFile())
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${file} is not a regular file (a symbolic link or a folder): it is not restored. Nothing was done on any host.`,
    );
  const got = await sha256File(file);
  if (got.sha256 !== info.sha256 || got.bytes !== info.bytes) {
    throw new K3sEtcdError(
      'snapshot-invalid',
      `${basename(file)} does not match its record: the file has ${got.bytes} bytes with SHA-256 ${got.sha256}, ${basename(recordFile)} says ${info.bytes} bytes with SHA-256 ${info.sha256}. The snapshot changed or is damaged since it was saved: it is not restored, and nothing was done on any host.`,
    );
  }
  return info;
}

/**
 * The restore of `file` onto `cluster`'s etcd hosts, in words and per member, once the snapshot
 * is checked against its record (`snapshot-invalid` otherwise). Reads no host.
 */
export async function planRestore(
  cluster: Cluster,
  file: string,
  opts: { now?: Date; token?: string } = {},
): Promise<RestorePlan> {
  if (cluster.datastore !== 'external-etcd') {
    throw new K3sEtcdError(
      'restore-refused',
      `Cluster ${cluster.name} runs K3s's embedded etcd: K3s restores it itself (k3s server --cluster-reset --cluster-reset-restore-path=SNAPSHOT, see the K3s documentation on etcd snapshots). This restore is for an external etcd provisioned by k3s-etcd.`,
    );
  }
  const hosts = etcdHosts(cluster);
  if (hosts.length === 0) {
    throw new K3sEtcdError(
      'restore-refused',
      `Cluster ${cluster.name} has no host with the etcd role in k3s-etcd.yaml: nothing to restore onto.`,
    );
  }
  checkDataDir(cluster);
  const snapshot = await verifySnapshot(cluster, file);
  const stamp = backupStamp(opts.now ?? new Date());
  const token = opts.token ?? `${cluster.etcd.initialClusterToken}-restored-${stamp}`;
  const tool: RestoreTool = etcdMinor(cluster.etcd.version) >= 5 ? 'etcdutl' : 'etcdctl';
  const data = cluster.etcd.dataDir;
  const upload = `${RESTORE_DIR}/${basename(file)}`;
  const cmds = restoreCommands(cluster, upload, {
    token,
    tool,
    binDir: BIN_DIR,
    dataDirOf: () => `${data}.restored`,
  });
  const members: RestoreMember[] = hosts.map((h, i) => ({
    host: h.name,
    member: h.memberName,
    address: h.address,
    upload,
    dataDir: data,
    restoredDir: `${data}.restored`,
    keptAs: `${data}.before-restore-${stamp}`,
    command: cmds[i]?.command ?? '',
  }));
  const names = hosts.map((h) => h.name).join(', ');
  const servers = k3sServers(cluster).map((h) => h.name);
  const steps = [
    `check the snapshot: ${snapshot.bytes} bytes with SHA-256 ${snapshot.sha256}, as its record says (revision ${snapshot.revision}, saved ${snapshot.createdAt} from ${snapshot.from})`,
    `reach every member host over SSH (${names}) and read each: systemd, the etcd unit and ${ENV_FILE}, the ${tool} to restore with, free space; nothing changes unless all are ready`,
    `upload the snapshot to ${upload} (0600, root) on every host and check its SHA-256 there`,
    `stop etcd on every member (${names}): the cluster is down from here until it starts again${servers.length > 0 ? `; K3s servers ${servers.join(', ')} lose their datastore meanwhile` : ''}`,
    `on every host: ${tool} snapshot restore into ${data}.restored with that member's name and peer URL and the new cluster token ${token} (if this fails anywhere, the restored dirs are removed and etcd starts again on its old data everywhere)`,
    `on every host: move ${data} aside to ${data}.before-restore-${stamp} (kept, never deleted), put ${data}.restored in its place (owner etcd, 0700, cluster marker), and in ${ENV_FILE} (old copy kept beside it) ETCD_INITIAL_CLUSTER_TOKEN=${token} and ETCD_INITIAL_CLUSTER_STATE=existing`,
    `start etcd on every member and wait until each is active (on a failure: the last lines of journalctl -u etcd)`,
    `wait until all ${hosts.length} members answer healthy over mutual TLS, and compare the revision they serve with the snapshot's (${snapshot.revision}); the uploaded copy is removed`,
    ...(servers.length > 0
      ? [
          `then restart K3s on ${servers.join(', ')} (one server at a time) so it reads the restored state: writes after revision ${snapshot.revision} are gone`,
        ]
      : []),
  ];
  return {
    cluster: cluster.name,
    file,
    snapshot,
    stamp,
    token,
    tool,
    members,
    steps,
    k3sServers: servers,
  };
}

/** The restore as text: the steps, then each member's command (for previews and the CLI). */
export function restorePlanText(plan: RestorePlan): string[] {
  return [
    `Restore etcd cluster ${plan.cluster} from the snapshot of ${plan.snapshot.createdAt} (revision ${plan.snapshot.revision}): ${plan.file}`,
    '',
    ...plan.steps.map((s, i) => `  ${i + 1}. ${s}`),
    '',
    'The restore command on each host (run as root, with etcd stopped on every member):',
    ...plan.members.flatMap((m) => [`  # ${m.host} (member ${m.member})`, `  ${m.command}`]),
  ];
}

/**
 * The tool a host restores with: etcdutl from etcd 3.5 when installed there, else etcdctl up to
 * 3.5 (3.5's etcdctl still restores; 3.6 removed it). An error message when neither fits.
 */
export function chooseTool(
  version: string,
  installed: readonly string[],
  binDir: string,
): { tool: RestoreTool } | { error: string } {
  const minor = etcdMinor(version);
  if (minor >= 5 && installed.includes('etcdutl')) return { tool: 'etcdutl' };
  if (!(minor >= 6) && installed.includes('etcdctl')) return { tool: 'etcdctl' };
  return {
    error:
      minor >= 6
        ? `etcd ${version} restores with etcdutl (etcdctl snapshot restore was removed in 3.6), and ${binDir}/etcdutl is not there: copy etcdutl from the etcd ${version} release into ${binDir}, then run the restore again`
        : `neither ${binDir}/etcdctl nor ${binDir}/etcdutl is there: provision etcd on the host first (k3s-etcd provision etcd)`,
  };
}

/** `text` with its ETCD_INITIAL_* lines replaced by `lines` (at the first one's place). */
export function withInitialLines(text: string, lines: readonly string[]): string {
  const out: string[] = [];
  let placed = false;
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  for (const l of body.split('\n')) {
    if (/^ETCD_INITIAL_/.test(l)) {
      if (!placed) out.push(...lines);
      placed = true;
    } else out.push(l);
  }
  if (!placed) out.push(...lines);
  return `${out.join('\n')}\n`;
}

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
  const chosen = chooseTool(
    read.facts.etcdVersion ?? cluster.etcd.version,
    read.tools,
    read.binDir,
  );
  if ('error' in chosen) throw new K3sEtcdError('restore-refused', `${host.name}: ${chosen.error}`);
  // Generated for the whole cluster: every member is restored with the same --initial-cluster.
  const cmd = restoreCommands(cluster, m.upload, {
    token: plan.token,
    tool: chosen.tool,
    binDir: read.binDir,
    dataDirOf: () => m.restoredDir,
  }).find((c) => c.host === host.name);
  const command = cmd?.command ?? '';
  const data = m.dataDir;
  const title = (what: string) =>
    `k3s-etcd: restore ${plan.cluster} from ${basename(plan.file)}, ${what}, on ${host.name} (${host.address})`;
  const snapshotKb = kb(plan.snapshot.bytes);
  const env = withInitialLines(read.env, [
    envLine('ETCD_INITIAL_ADVERTISE_PEER_URLS', peerUrl(cluster, host)),
    envLine('ETCD_INITIAL_CLUSTER', initialClusterOf(cluster)),
    envLine('ETCD_INITIAL_CLUSTER_TOKEN', plan.token),
    'ETCD_INITIAL_CLUSTER_STATE=existing',
  ]);
  const journal = journalLines('etcd');

  const prepare: Step[] = [
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
      title: `${chosen.tool} ${read.binDir}/${chosen.tool} restores the snapshot`,
      check: `[ -x ${q(`${read.binDir}/${chosen.tool}`)} ]`,
      message: `"${dq(`${read.binDir}/${chosen.tool}`)} is missing"`,
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

  const stop: Step[] = [
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

  const restore: Step[] = [
    {
      kind: 'command',
      id: 'restore',
      title: `${chosen.tool} snapshot restore into ${m.restoredDir} (member ${m.member}, token ${plan.token})`,
      check: 'false',
      run: [
        `if systemctl is-active -q etcd; then fail "etcd is running: the restore needs every member stopped"; fi`,
        `rm -rf ${q(m.restoredDir)}`,
        `${command} 2>&1 || { rm -rf ${q(m.restoredDir)}; fail "${chosen.tool} snapshot restore failed: its output is above"; }`,
        `[ -d ${q(`${m.restoredDir}/member`)} ] || fail "${dq(m.restoredDir)} holds no member after the restore"`,
      ].join('\n'),
    },
  ];

  const start: Step[] = [
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
    },
    {
      kind: 'command',
      id: 'cleanup',
      title: `remove the uploaded copy ${m.upload}`,
      check: `[ ! -e ${q(m.upload)} ]`,
      run: `rm -f ${q(m.upload)}`,
    },
  ];

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
    prepare: hostPlan('prepare', prepare),
    stop: hostPlan('stop', stop),
    restore: hostPlan('restore', restore),
    start: hostPlan('start', start),
  };
}

/** Reads what the plan needs from one host (facts, env file, tools). */
async function readRestoreFacts(
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

interface Target {
  host: Host;
  t: HostTransport;
  plans: RestoreHostPlans;
}

const failed = (r: HostRun) => r.status === 'failed' || r.status === 'cancelled';

/** Runs one phase on every host in parallel; a host that throws becomes a failed run. */
async function runPhase(
  targets: Target[],
  phase: RestorePhase,
  opts: { dryRun: boolean } & RunHooks,
): Promise<HostRun[]> {
  return Promise.all(
    targets.map(async ({ host, t, plans }): Promise<HostRun> => {
      try {
        return await runHostPlan(t, plans[phase], opts);
      } catch (err) {
        const cancelled = isCancelled(err) || opts.signal?.aborted === true;
        const message = `${host.name}: ${cancelled ? 'cancelled' : errorMessage(err)}`;
        opts.onLine?.(host.name, `error: ${message}`);
        return {
          host: host.name,
          status: cancelled ? 'cancelled' : 'failed',
          steps: [],
          error: {
            ...(err instanceof K3sEtcdError ? { code: err.code } : {}),
            message,
          },
          timings: {},
        };
      }
    }),
  );
}

const failures = (runs: HostRun[]) =>
  runs
    .filter(failed)
    .map((r) => r.error?.message ?? `${r.host}: ${r.status}`)
    .join('; ');

async function journalTail(t: HostTransport): Promise<string> {
  const r = await t.exec(journalLines('etcd', 15), { sudo: true }).catch(() => undefined);
  return (r?.stdout ?? '').trim();
}

/** After a failure before any data dir was replaced: etcd started again on its old data. */
async function startAgain(
  targets: Target[],
  plan: RestorePlan,
  say: (host: string, line: string) => void,
): Promise<string[]> {
  const results = await Promise.all(
    targets.map(async ({ host, t }) => {
      const restored = plan.members.find((m) => m.host === host.name)?.restoredDir;
      const r = await t
        .exec(
          `${restored ? `rm -rf ${q(restored)}; ` : ''}systemctl reset-failed etcd 2>/dev/null || true; systemctl start --no-block etcd`,
          { sudo: true },
        )
        .catch((err: unknown) => ({ code: 1, stdout: '', stderr: errorMessage(err) }));
      const ok = r.code === 0;
      say(
        host.name,
        ok
          ? 'etcd started again on its old data (nothing was replaced)'
          : `could not start etcd again: ${r.stderr.trim()} (start it yourself: sudo systemctl start etcd)`,
      );
      return ok ? undefined : host.name;
    }),
  );
  return results.filter((h): h is string => h !== undefined);
}

/**
 * Every member answers as one cluster: the same cluster ID, and a member list of exactly the
 * inventory's peer URLs (a member restored with another --initial-cluster forms its own cluster,
 * healthy on its own). Undefined when it does, else what differs.
 */
export async function oneClusterProblem(
  cluster: Cluster,
  tls: EtcdTls,
): Promise<string | undefined> {
  const want = etcdHosts(cluster)
    .map((h) => peerUrl(cluster, h))
    .sort();
  const seen = await Promise.all(
    etcdHosts(cluster).map(async (h) => {
      const endpoint = clientUrl(cluster, h);
      const c = await createEndpointClient(endpoint, { tls, timeoutMs: 5000 });
      try {
        const r = await c.cluster.memberList({});
        return {
          host: h.name,
          clusterId: String(r.header.cluster_id),
          peers: r.members.flatMap((m) => m.peerURLs).sort(),
        };
      } catch (err) {
        return { host: h.name, clusterId: `unreachable (${errorMessage(err)})`, peers: [] };
      } finally {
        c.close();
      }
    }),
  );
  const ids = new Set(seen.map((x) => x.clusterId));
  const wrong = seen.filter((x) => x.peers.join(',') !== want.join(','));
  if (ids.size === 1 && wrong.length === 0) return undefined;
  return seen
    .map((x) => `${x.host}: cluster ${x.clusterId}, members ${x.peers.join(' ') || 'none'}`)
    .join('; ');
}

/**
 * Restores `file` (or `opts.plan`) onto every etcd host of `cluster`. A dry run returns every
 * phase's outcome, each host only read. A real run throws `restore-refused` when something
 * stops it before etcd was stopped anywhere, and `restore-failed` (saying where each host stands)
 * after; it resolves once the restored cluster answers healthy.
 */
export async function restoreSnapshot(
  cluster: Cluster,
  file: string,
  opts: RestoreOptions,
): Promise<RestoreResult> {
  const plan = opts.plan ?? (await planRestore(cluster, file));
  const hosts = etcdHosts(cluster);
  const say = (host: string, line: string) => opts.onLine?.(host, line);
  const hooks: RunHooks = {
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onLine ? { onLine: opts.onLine } : {}),
    ...(opts.onStep ? { onStep: opts.onStep } : {}),
  };

  // Reach and read every host before anything changes.
  const opened = await Promise.allSettled(
    hosts.map(async (host): Promise<{ host: Host; t: HostTransport }> => ({
      host,
      t: await sshOpener(cluster, host, opts.ssh)(opts.signal),
    })),
  );
  const transports = opened
    .filter(
      (o): o is PromiseFulfilledResult<{ host: Host; t: HostTransport }> =>
        o.status === 'fulfilled',
    )
    .map((o) => o.value);
  try {
    const unreachable = opened
      .map((o, i) =>
        o.status === 'rejected' ? { host: hosts[i] as Host, err: o.reason as unknown } : undefined,
      )
      .filter((x) => x !== undefined);
    if (opts.signal?.aborted) throw new CancelledError('Restore');
    if (unreachable.length > 0) {
      const first = unreachable[0]?.err;
      throw new K3sEtcdError(
        first instanceof K3sEtcdError ? first.code : 'ssh-unreachable',
        `Cannot reach ${unreachable.map((u) => `${u.host.name} (${u.host.address}): ${errorMessage(u.err)}`).join('; ')}. Every member host must be reachable before a restore stops etcd: nothing was changed on any host.`,
        { cause: first },
      );
    }
    const targets: Target[] = [];
    const planned = await Promise.allSettled(
      transports.map(async ({ host, t }) => {
        const read = await readRestoreFacts(t, cluster, host, opts.signal);
        return { host, t, plans: restoreHostPlans(cluster, plan, host, read) };
      }),
    );
    const notPlanned: string[] = [];
    for (const p of planned) {
      if (p.status === 'fulfilled') targets.push(p.value);
      else notPlanned.push(errorMessage(p.reason));
    }
    if (opts.signal?.aborted) throw new CancelledError('Restore');
    if (notPlanned.length > 0) {
      throw new K3sEtcdError(
        'restore-refused',
        `${notPlanned.join('; ')}. Nothing was changed on any host.`,
      );
    }
    const phases: RestoreResult['phases'] = [];
    const order: RestorePhase[] = ['prepare', 'stop', 'restore', 'start'];
    const run = async (phase: RestorePhase, dryRun: boolean, cancellable = true) => {
      const n = order.indexOf(phase) + 1;
      opts.onPhase?.(phase, n, PHASE_TITLES[phase]);
      const { signal, ...rest } = hooks;
      const runs = await runPhase(targets, phase, {
        ...rest,
        ...(cancellable && signal ? { signal } : {}),
        dryRun,
      });
      phases.push({ phase, runs });
      return runs;
    };

    if (opts.dryRun) {
      for (const phase of order) await run(phase, true);
      return { plan, dryRun: true, phases, kept: [] };
    }

    const prepared = await run('prepare', false);
    if (prepared.some(failed)) {
      if (opts.signal?.aborted) throw new CancelledError('Restore');
      throw new K3sEtcdError(
        'restore-refused',
        `The restore stopped before etcd was stopped anywhere: ${failures(prepared)}. etcd runs on as before.`,
      );
    }

    // From here on a failure is answered by starting etcd again where it ran before.
    const stopped = await run('stop', false);
    if (stopped.some(failed)) {
      const notStarted = await startAgain(targets, plan, say);
      if (opts.signal?.aborted) throw new CancelledError('Restore');
      throw new K3sEtcdError(
        'restore-failed',
        `etcd could not be stopped on every member (${failures(stopped)}): the restore did not go on, etcd was started again on its old data${notStarted.length > 0 ? `, except on ${notStarted.join(', ')}: start it there` : ''}. Nothing was replaced.`,
      );
    }
    const restored = await run('restore', false);
    if (restored.some(failed)) {
      const notStarted = await startAgain(targets, plan, say);
      if (opts.signal?.aborted) throw new CancelledError('Restore');
      throw new K3sEtcdError(
        'restore-failed',
        `The snapshot could not be restored on every member (${failures(restored)}): no data dir was replaced, and etcd was started again on its old data${notStarted.length > 0 ? `, except on ${notStarted.join(', ')}: start it there` : ''}.`,
      );
    }

    // Once data dirs are swapped the restore goes to the end: cancelling here would leave
    // members on different data.
    const started = await run('start', false, false);
    const kept = targets
      .filter(({ host, plans }) => {
        const aside = plans.start.steps.findIndex((s) => s.id === 'aside') + 1;
        const r = started.find((x) => x.host === host.name);
        return r?.steps.some((s) => s.n === aside && s.status === 'changed');
      })
      .map(({ host }) => ({
        host: host.name,
        path: plan.members.find((m) => m.host === host.name)?.keptAs ?? '',
      }));
    if (started.some(failed)) {
      const tails = await Promise.all(
        targets
          .filter(({ host }) => started.some((r) => r.host === host.name && failed(r)))
          .map(
            async ({ host, t }) =>
              `--- journalctl -u etcd on ${host.name}:\n${await journalTail(t)}`,
          ),
      );
      throw new K3sEtcdError(
        'restore-failed',
        `etcd did not start on the restored data on every member: ${failures(started)}. The old data dirs are kept (${kept.map((k) => `${k.host}: ${k.path}`).join(', ') || 'none was moved'}).\n${tails.join('\n')}`,
      );
    }

    const health = await waitHealthy(cluster, hosts, (opts.healthySeconds ?? 90) * 1000);
    if (!health.ok) {
      const tails = await Promise.all(
        targets.map(
          async ({ host, t }) => `--- journalctl -u etcd on ${host.name}:\n${await journalTail(t)}`,
        ),
      );
      throw new K3sEtcdError(
        'restore-failed',
        `etcd started on the restored data on every member, but the cluster is not healthy: ${health.summary}. The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host.\n${tails.join('\n')}`,
      );
    }
    const apart = await oneClusterProblem(cluster, (await connectionFor(cluster)).tls);
    if (apart) {
      throw new K3sEtcdError(
        'restore-failed',
        `etcd started on the restored data on every member, but the members do not form one cluster of ${hosts.length} (${apart}). The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host.`,
      );
    }
    let revision: string | undefined;
    try {
      const { client } = await healthyClient(cluster, { timeoutMs: 5000 });
      try {
        revision = (await client.maintenance.status()).header.revision;
      } finally {
        client.close();
      }
    } catch (err) {
      say(cluster.name, `could not read the revision: ${errorMessage(err)}`);
    }
    return {
      plan,
      dryRun: false,
      phases,
      restored: true,
      healthy: true,
      healthSummary: health.summary,
      ...(revision !== undefined ? { revision } : {}),
      kept,
    };
  } finally {
    for (const { t } of transports) t.close();
  }
}
