/**
 * The recovery's host scripts (pure: built from the plan and what was read of the host):
 * each other member stops and keeps its data aside; the survivor starts once with
 * --force-new-cluster, then normally, its env file naming itself alone.
 */
import { dirname } from 'node:path';
import { ENV_FILE, PKI, UNIT_FILE, envLine, withInitialLines } from '../etcd/memberHost';
import { clientUrl, peerUrl } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { dq, journalTail } from '../plan/snippets';
import { fileStep, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import { shellQuote as q } from '../ssh/quote';
import { FORCE_DROP_IN, type RecoverPlan } from './plan';

const title = (plan: RecoverPlan, host: Host, what: string) =>
  `k3s-etcd: recover ${plan.cluster} from ${plan.survivor.host}, ${what}, on ${host.name} (${host.address})`;

function stopStep(why: string): Step {
  return {
    kind: 'command',
    id: 'stop',
    title: `stop etcd (${why})`,
    check: `case "$(systemctl show -p ActiveState --value etcd 2>/dev/null)" in inactive | failed | '') true ;; *) false ;; esac`,
    run: [
      'systemctl stop etcd || fail "systemctl stop etcd failed"',
      'if systemctl is-active -q etcd; then fail "etcd is still active after systemctl stop"; fi',
    ].join('\n'),
  };
}

const notMounted = (data: string): Step => ({
  kind: 'guard',
  id: 'not-mounted',
  title: `${data} is a folder that can be moved aside (not a mount point)`,
  check: `{ ! command -v mountpoint >/dev/null 2>&1; } || ! mountpoint -q ${q(data)}`,
  message: `"${dq(data)} is a mount point: the recovery keeps the old data by renaming the data dir, which a mount point cannot be. Move the data into a folder inside the mount and point etcd.dataDir there"`,
});

/** Another member: etcd stopped, its data dir moved aside (kept). */
export function asidePlan(plan: RecoverPlan, host: Host): HostPlan {
  const data = plan.dataDir;
  const keptAs = `${data}.recover-${plan.stamp}`;
  return {
    host: host.name,
    title: title(plan, host, 'stop and keep the data aside'),
    payloads: [],
    steps: [
      systemdGuard('the recovery stops etcd with systemctl'),
      notMounted(data),
      stopStep(`${plan.survivor.host} becomes the cluster; this member rejoins afterwards`),
      {
        kind: 'command',
        id: 'aside',
        title: `move ${data} aside to ${keptAs} (kept, never deleted)`,
        check: `[ ! -e ${q(data)} ]`,
        run: [
          `[ ! -e ${q(keptAs)} ] || fail "${dq(keptAs)} already exists: not moving ${dq(data)} over it"`,
          `mv ${q(data)} ${q(keptAs)} || fail "cannot move ${dq(data)} aside"`,
        ].join('\n'),
      },
    ],
  };
}

/** What the survivor's script needs from its host. */
export interface SurvivorRead {
  /** The env file's text. */
  env: string;
  /** Folder of the installed etcd (its etcdctl is there). */
  binDir: string;
}

/** The survivor's env file: its ETCD_INITIAL_* lines name itself alone (the token kept). */
export function survivorEnv(cluster: Cluster, host: Host, env: string): string {
  // The token the data was made with (a restore changes it): kept as the host has it.
  const token =
    /^ETCD_INITIAL_CLUSTER_TOKEN=.*$/m.exec(env)?.[0] ??
    envLine('ETCD_INITIAL_CLUSTER_TOKEN', cluster.etcd.initialClusterToken);
  return withInitialLines(env, [
    envLine('ETCD_INITIAL_ADVERTISE_PEER_URLS', peerUrl(cluster, host)),
    envLine('ETCD_INITIAL_CLUSTER', `${host.memberName}=${peerUrl(cluster, host)}`),
    token,
    'ETCD_INITIAL_CLUSTER_STATE=existing',
  ]);
}

/** The survivor: started once with --force-new-cluster, then normally. */
export function survivorPlan(
  cluster: Cluster,
  plan: RecoverPlan,
  host: Host,
  read: SurvivorRead,
): HostPlan {
  const data = plan.dataDir;
  const dropInDir = dirname(FORCE_DROP_IN);
  const etcdctl = `${read.binDir}/etcdctl`;
  const health = `${q(etcdctl)} --endpoints=${q(clientUrl(cluster, host))} --cacert=${PKI}/ca.pem --cert=${PKI}/server.pem --key=${PKI}/server-key.pem --command-timeout=3s endpoint health >/dev/null 2>&1`;
  const journal = journalTail('etcd');
  const copy: Step[] = plan.survivor.copyAs
    ? [
        {
          kind: 'command',
          id: 'copy',
          title: `copy ${data} to ${plan.survivor.copyAs} (kept: the data as it was)`,
          check: `[ -e ${q(plan.survivor.copyAs)} ]`,
          run: `cp -a ${q(data)} ${q(plan.survivor.copyAs)} || { rm -rf ${q(plan.survivor.copyAs)}; fail "cannot copy ${dq(data)}"; }`,
        },
      ]
    : [];
  return {
    host: host.name,
    title: title(plan, host, 'start it once with --force-new-cluster'),
    payloads: [],
    steps: [
      systemdGuard('the recovery starts etcd with systemctl'),
      {
        kind: 'guard',
        id: 'unit',
        title: `etcd runs under systemd here (${UNIT_FILE})`,
        check: `[ -f ${UNIT_FILE} ]`,
        message: `"there is no ${UNIT_FILE}: etcd was not provisioned on this host by k3s-etcd"`,
      },
      {
        kind: 'guard',
        id: 'data',
        title: `${data} holds the member's data`,
        check: `[ -d ${q(`${data}/member`)} ]`,
        message: `"${dq(data)} holds no member: it cannot be the survivor (detect again)"`,
      },
      {
        kind: 'guard',
        id: 'etcdctl',
        title: `${etcdctl} checks its health`,
        check: `[ -x ${q(etcdctl)} ]`,
        message: `"${dq(etcdctl)} is missing"`,
      },
      stopStep('every member stops before the survivor starts alone'),
      ...copy,
      {
        kind: 'dir',
        id: 'drop-in-dir',
        title: `${dropInDir} (volatile: gone at the next boot)`,
        path: dropInDir,
        mode: 0o755,
        owner: 'root',
        group: 'root',
      },
      fileStep({
        id: 'force',
        title: `one-shot drop-in ${FORCE_DROP_IN}: ETCD_FORCE_NEW_CLUSTER=true`,
        path: FORCE_DROP_IN,
        mode: 0o644,
        content:
          '# Written by k3s-etcd recover for one start, removed as soon as etcd answers.\n[Service]\nEnvironment=ETCD_FORCE_NEW_CLUSTER=true\n',
      }),
      {
        kind: 'command',
        id: 'force-start',
        title: 'start etcd with --force-new-cluster (a cluster of this member alone, all its data)',
        check: 'false',
        run: [
          'systemctl daemon-reload',
          'systemctl reset-failed etcd 2>/dev/null || true',
          `systemctl start etcd || { rm -f ${q(FORCE_DROP_IN)}; systemctl daemon-reload; ${journal}; fail "etcd did not start with --force-new-cluster: the last lines of journalctl -u etcd are above"; }`,
        ].join('\n'),
      },
      {
        kind: 'wait',
        id: 'force-up',
        title: 'etcd answers healthy alone',
        check: health,
        seconds: 90,
        onTimeout: `rm -f ${q(FORCE_DROP_IN)}; systemctl daemon-reload; ${journal}`,
        message:
          '"etcd started with --force-new-cluster but is not healthy within 90 s: the last lines of journalctl -u etcd are above"',
      },
      {
        kind: 'command',
        id: 'force-off',
        title: `remove ${FORCE_DROP_IN} (later starts are normal)`,
        check: 'false',
        run: `rm -f ${q(FORCE_DROP_IN)}\nsystemctl daemon-reload`,
      },
      fileStep({
        id: 'env',
        title: `${ENV_FILE}: ETCD_INITIAL_CLUSTER=${host.memberName}=${peerUrl(cluster, host)}, state existing`,
        path: ENV_FILE,
        content: survivorEnv(cluster, host, read.env),
        mode: 0o600,
        backup: true,
      }),
      {
        kind: 'command',
        id: 'restart',
        title: 'restart etcd normally (without --force-new-cluster)',
        check: 'false',
        run: `systemctl restart etcd || { ${journal}; fail "etcd did not restart normally: the last lines of journalctl -u etcd are above"; }`,
      },
      {
        kind: 'wait',
        id: 'healthy',
        title: `etcd answers healthy on ${clientUrl(cluster, host)}`,
        check: health,
        seconds: 90,
        onTimeout: journal,
        message:
          '"etcd restarted but is not healthy within 90 s: the last lines of journalctl -u etcd are above"',
      },
    ],
  };
}
