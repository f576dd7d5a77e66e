/**
 * Scheduled maintenance on the etcd hosts (`k3s-etcd maintain --install-timer`): a systemd timer
 * and a oneshot service on every member host that run `timerScript.ts` (compaction when needed,
 * defragmentation one member at a time, NOSPACE disarmed with headroom) without the editor.
 * Every host gets the timer; only the host whose member leads acts at each run, so the hosts
 * never defragment at once. The plan is an ordinary host plan (files with hashes, a reload, the
 * timer enabled), previewed and applied like provisioning; `--remove-timer` takes it away again
 * (the reports stay).
 *
 * The inventory's values reach the host only through the env file, and only after the checks
 * below: a name, an address or a calendar that could end a line or carry a quote is refused.
 */
import { K3sEtcdError } from '../errors';
import { MAINTENANCE_RECORD_KEY } from '../etcd/maintenanceRecord';
import { PKI, UNIT_FILE, BIN_DIR } from '../etcd/memberHost';
import { clientUrl, etcdHosts, selectHosts } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { runJobs, type HostRun, type RunHooks } from '../plan/runner';
import { fileStep, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import { shellQuote as q } from '../ssh/quote';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { DEFAULT_DEFRAG_RULE, type DefragRule } from './rule';
import { TIMER_SCRIPT } from './timerScript';

export const TIMER_UNIT = 'k3s-etcd-maintain.timer';
export const TIMER_SERVICE = 'k3s-etcd-maintain.service';
export const TIMER_SCRIPT_PATH = '/usr/local/sbin/k3s-etcd-maintain';
export const TIMER_ENV_FILE = '/etc/k3s-etcd/maintain.env';
/** Where each run leaves its JSON report on the host (0700, the newest `KEEP_REPORTS` kept). */
export const HOST_REPORTS_DIR = '/var/lib/k3s-etcd/reports';
export const KEEP_REPORTS = 50;
/** Every day at 03:17 host time: off the full hour, when most clusters are quiet. */
export const DEFAULT_ON_CALENDAR = '*-*-* 03:17:00';

const UNIT_DIR = '/etc/systemd/system';
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const SAFE_URL = /^https?:\/\/[A-Za-z0-9.:[\]-]{1,253}$/;
/** systemd calendar expressions: digits, names, `*`, `:`, `/`, `,`, `.`, `~`, `-`, spaces. */
const SAFE_CALENDAR = /^[A-Za-z0-9*:/,.~ -]{1,80}$/;

export interface TimerOptions {
  /** systemd OnCalendar (default `DEFAULT_ON_CALENDAR`). */
  onCalendar?: string;
  rule?: DefragRule;
}

function refuse(what: string): never {
  throw new K3sEtcdError(
    'provision-refused',
    `${what}: it cannot go into the maintenance timer's environment file. Nothing was run.`,
  );
}

/** A share as thousandths (0.5 → 500); the rule's shares have at most three decimals here. */
const permille = (share: number) => Math.round(share * 1000);

/** The env file of `host`'s timer: every value checked, lists comma-separated. */
export function timerEnv(cluster: Cluster, host: Host, rule: DefragRule): string {
  const members = etcdHosts(cluster);
  for (const n of [cluster.name, host.name, ...members.map((h) => h.memberName)])
    if (!SAFE_NAME.test(n)) refuse(`the name ${JSON.stringify(n)}`);
  const urls = members.map((h) => clientUrl(cluster, h));
  for (const u of urls) if (!SAFE_URL.test(u)) refuse(`the client URL ${JSON.stringify(u)}`);
  const lines: Array<[string, string | number]> = [
    ['CLUSTER', cluster.name],
    ['HOST', host.name],
    ['NAMES', members.map((h) => h.memberName).join(',')],
    ['ENDPOINTS', urls.join(',')],
    ['LOCAL', clientUrl(cluster, host)],
    ['FREE_PERMILLE', permille(rule.freeShare)],
    ['MIN_DB_BYTES', Math.round(rule.minDbBytes)],
    ['QUOTA_PERMILLE', permille(rule.quotaShare)],
    ['RECENT_REVISIONS', rule.recentRevisions],
    ['KEEP_REPORTS', KEEP_REPORTS],
    ['REPORTS_DIR', HOST_REPORTS_DIR],
    ['RECORD_KEY', MAINTENANCE_RECORD_KEY],
    ['PKI', PKI],
    ['ETCD_ENV', '/etc/etcd/etcd.env'],
  ];
  return [
    '# k3s-etcd maintenance timer: written by k3s-etcd maintain --install-timer from the inventory.',
    ...lines.map(([k, v]) => `${k}=${v}`),
    '',
  ].join('\n');
}

/** Why `text` cannot be a schedule here (undefined: it may be; the host's systemd has the last word). */
export function calendarProblem(text: string): string | undefined {
  return SAFE_CALENDAR.test(text)
    ? undefined
    : 'a systemd calendar holds letters, digits, spaces and * : / , . ~ - only (80 at most)';
}

export function timerUnits(
  cluster: Cluster,
  onCalendar: string,
): { service: string; timer: string } {
  if (calendarProblem(onCalendar)) refuse(`the calendar ${JSON.stringify(onCalendar)}`);
  return {
    service: [
      '[Unit]',
      `Description=k3s-etcd maintenance of etcd cluster ${cluster.name} (compaction, defragmentation one member at a time)`,
      `Documentation=file://${TIMER_SCRIPT_PATH}`,
      `After=${UNIT_FILE.split('/').pop()} network-online.target`,
      '',
      '[Service]',
      'Type=oneshot',
      `EnvironmentFile=${TIMER_ENV_FILE}`,
      `ExecStart=${TIMER_SCRIPT_PATH}`,
      'TimeoutStartSec=6h',
      '',
    ].join('\n'),
    timer: [
      '[Unit]',
      `Description=k3s-etcd maintenance of etcd cluster ${cluster.name}, on a schedule`,
      '',
      '[Timer]',
      `OnCalendar=${onCalendar}`,
      'AccuracySec=1s',
      'Persistent=true',
      `Unit=${TIMER_SERVICE}`,
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n'),
  };
}

/** The plan that installs (or, with `remove`, takes away) the timer on one member host. */
export function timerPlan(
  cluster: Cluster,
  host: Host,
  opts: TimerOptions & { remove?: boolean } = {},
): HostPlan {
  const unitPath = (u: string) => `${UNIT_DIR}/${u}`;
  if (opts.remove) {
    const files = [
      TIMER_SCRIPT_PATH,
      TIMER_ENV_FILE,
      unitPath(TIMER_UNIT),
      unitPath(TIMER_SERVICE),
    ];
    return {
      host: host.name,
      title: `remove the maintenance timer of ${cluster.name} from ${host.name}`,
      payloads: [],
      steps: [
        systemdGuard('the maintenance timer is a systemd timer'),
        {
          kind: 'command',
          id: 'remove_timer',
          title: `${TIMER_UNIT} stopped and removed (its reports in ${HOST_REPORTS_DIR} stay)`,
          check: files.map((f) => `[ ! -e ${q(f)} ]`).join(' && '),
          run: [
            `systemctl disable --now ${TIMER_UNIT} >/dev/null 2>&1 || true`,
            `rm -f ${files.map(q).join(' ')}`,
            'systemctl daemon-reload',
          ].join('\n'),
        },
      ],
    };
  }
  const rule = opts.rule ?? DEFAULT_DEFRAG_RULE;
  const onCalendar = opts.onCalendar ?? DEFAULT_ON_CALENDAR;
  const units = timerUnits(cluster, onCalendar);
  const steps: Step[] = [
    systemdGuard('the maintenance timer is a systemd timer'),
    {
      kind: 'guard',
      id: 'etcd_here',
      title: 'etcd and etcdctl are installed here by k3s-etcd',
      check: `[ -f ${q(UNIT_FILE)} ] && [ -x ${q(`${BIN_DIR}/etcdctl`)} ] && [ -f ${q(`${PKI}/server.pem`)} ]`,
      message: `"etcd is not provisioned on this host by k3s-etcd (no ${UNIT_FILE}, ${BIN_DIR}/etcdctl or ${PKI}/server.pem): run provision etcd first"`,
    },
    {
      kind: 'guard',
      id: 'flock_here',
      title: 'flock(1) is installed (one run at a time on this host)',
      check: 'command -v flock >/dev/null 2>&1',
      message: '"flock is missing: install util-linux"',
    },
    {
      kind: 'guard',
      id: 'calendar',
      title: `systemd reads the schedule ${onCalendar}`,
      check: `systemd-analyze calendar ${q(onCalendar)} >/dev/null 2>&1`,
      message: `${q(`OnCalendar ${onCalendar} is not a calendar expression systemd understands (see man systemd.time); give another with --on-calendar`)}`,
    },
    fileStep({
      id: 'maintain_script',
      title: `the maintenance script ${TIMER_SCRIPT_PATH}`,
      path: TIMER_SCRIPT_PATH,
      mode: 0o755,
      content: TIMER_SCRIPT,
    }),
    fileStep({
      id: 'maintain_env',
      title: `its settings ${TIMER_ENV_FILE}`,
      path: TIMER_ENV_FILE,
      mode: 0o644,
      content: timerEnv(cluster, host, rule),
    }),
    fileStep({
      id: 'maintain_service',
      title: `the unit ${TIMER_SERVICE}`,
      path: unitPath(TIMER_SERVICE),
      mode: 0o644,
      content: units.service,
    }),
    fileStep({
      id: 'maintain_timer',
      title: `the timer ${TIMER_UNIT} (${onCalendar})`,
      path: unitPath(TIMER_UNIT),
      mode: 0o644,
      content: units.timer,
    }),
    {
      kind: 'command',
      id: 'maintain_reload',
      title: 'systemd reads the changed units',
      check: '! changed maintain_service && ! changed maintain_timer',
      run: 'systemctl daemon-reload',
    },
    {
      kind: 'service',
      id: 'maintain_timer_on',
      title: `${TIMER_UNIT} enabled and running`,
      unit: TIMER_UNIT,
      restartOn: ['maintain_timer'],
    },
  ];
  return {
    host: host.name,
    title: `the maintenance timer of ${cluster.name} on ${host.name}`,
    payloads: [],
    steps,
  };
}

export interface TimerInstallOptions extends TimerOptions, RunHooks {
  ssh: SshContext;
  dryRun: boolean;
  /** Only these member hosts (default: every member host). */
  hosts?: readonly string[];
  remove?: boolean;
}

/**
 * Installs (or removes) the timer on every member host, all at once: nothing here restarts
 * etcd, and every host needs it (only the leader's acts at each run).
 */
export async function installMaintainTimer(
  cluster: Cluster,
  opts: TimerInstallOptions,
): Promise<HostRun[]> {
  const hosts = selectHosts(cluster, opts.hosts);
  // Bad input before any connection.
  const plans = new Map(hosts.map((h) => [h.name, timerPlan(cluster, h, opts)]));
  return runJobs(
    hosts.map((host) => ({
      host: host.name,
      open: sshOpener(cluster, host, opts.ssh),
      plan: async () => plans.get(host.name)!,
    })),
    opts,
  );
}
