/**
 * An etcd member host as this tool installs it: where the binaries, the certificates, the env
 * file, the unit and the cluster marker are, the data dir it accepts, and what a host is read as
 * before anything is planned (one read-only command, `readFacts`). Provisioning, restore, repair
 * and snapshots all plan against this one description.
 */
import { K3sEtcdError } from '../errors';
import { dataDirProblem } from '../inventory/dataDir';
import type { Cluster, Host } from '../inventory/types';
import type { HostTransport } from '../plan/runner';
import { hasControl } from '../plan/steps';
import { shellQuote as q } from '../ssh/quote';

export type EtcdArch = 'amd64' | 'arm64' | 'arm' | 'ppc64le' | 's390x';

const ARCHES: Record<string, EtcdArch> = {
  x86_64: 'amd64',
  amd64: 'amd64',
  aarch64: 'arm64',
  arm64: 'arm64',
  armv7l: 'arm',
  armv7: 'arm',
  ppc64le: 'ppc64le',
  s390x: 's390x',
};

/** What the provisioner learns about a host before planning (one read-only command). */
export interface HostFacts {
  machine: string;
  arch?: EtcdArch;
  init: 'systemd' | 'openrc' | 'other';
  etcdPath?: string;
  etcdVersion?: string;
  /** The data dir already holds a member. */
  hasData: boolean;
  /** ETCD_INITIAL_* lines of the current env file (kept once the member has data). */
  initialLines: string[];
  addresses: string[];
}

export const ETC = '/etc/etcd';
export const PKI = `${ETC}/pki`;
export const ENV_FILE = `${ETC}/etcd.env`;
export const UNIT_FILE = '/etc/systemd/system/etcd.service';
export const BIN_DIR = '/usr/local/bin';
/** The cluster marker file in a member's data dir (see `markerText`). */
export const MARKER = '.k3s-etcd-cluster';

/**
 * The cluster's data dir, refused (before any script uses it) when it is not a folder of its
 * own: a system folder, a parent of one, a path with `..` or a single segment.
 */
export function checkDataDir(cluster: Cluster): string {
  const dir = cluster.etcd.dataDir;
  const problem = dataDirProblem(dir);
  if (problem) {
    throw new K3sEtcdError(
      'provision-refused',
      `etcd.dataDir ${JSON.stringify(dir)} of cluster ${cluster.name} ${problem}. The data dir is given to the etcd user (chown, chmod 0700), moved aside by a restore and deleted by member remove --purge-data: set etcd.dataDir in k3s-etcd.yaml to a folder of its own, such as /var/lib/etcd. Nothing was run.`,
    );
  }
  return dir;
}

/** The read-only command that gathers `HostFacts` (run as root: the data dir is 0700). */
export function factsCommand(dataDir: string): string {
  return [
    'echo "machine=$(uname -m)"',
    'if [ -d /run/systemd/system ]; then echo init=systemd; elif command -v openrc >/dev/null 2>&1 || command -v rc-service >/dev/null 2>&1; then echo init=openrc; else echo init=other; fi',
    `p=$(command -v etcd 2>/dev/null || true); if [ -x ${BIN_DIR}/etcd ]; then p=${BIN_DIR}/etcd; fi; echo "etcd_path=$p"`,
    'if [ -n "$p" ]; then echo "etcd_version=$("$p" --version 2>/dev/null | sed -n \'s/^etcd Version: //p\')"; fi',
    `if [ -d ${q(`${dataDir}/member`)} ]; then echo has_data=1; fi`,
    `if [ -f ${ENV_FILE} ]; then grep '^ETCD_INITIAL_' ${ENV_FILE} | sed 's/^/initial=/' || true; fi`,
    "echo \"addresses=$( (ip -o addr show 2>/dev/null || true) | awk '{print $4}' | cut -d/ -f1 | tr '\\n' ' ')\"",
  ].join('\n');
}

export function parseFacts(out: string): HostFacts {
  const facts: HostFacts = {
    machine: '',
    init: 'other',
    hasData: false,
    initialLines: [],
    addresses: [],
  };
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1).trim();
    if (k === 'machine') {
      facts.machine = v;
      const arch = ARCHES[v];
      if (arch) facts.arch = arch;
    } else if (k === 'init') facts.init = v === 'systemd' || v === 'openrc' ? v : 'other';
    else if (k === 'etcd_path' && /^\/[\w./+-]+$/.test(v)) facts.etcdPath = v;
    else if (k === 'etcd_version' && v) facts.etcdVersion = v;
    else if (k === 'has_data') facts.hasData = true;
    // Whole ETCD_INITIAL_* lines only: they go back into the env file as they are.
    else if (k === 'initial' && /^ETCD_INITIAL_[A-Z_]+=/.test(v) && !hasControl(v))
      facts.initialLines.push(v);
    else if (k === 'addresses') facts.addresses = v.split(/\s+/).filter(Boolean);
  }
  return facts;
}

/** Refuses hosts the plan cannot serve, with the host named. */
export function checkFacts(host: Host, facts: HostFacts): void {
  if (facts.init === 'openrc') {
    throw new K3sEtcdError(
      'provision-unsupported',
      `${host.name} runs OpenRC: provisioning etcd supports systemd hosts only for now. Install etcd there by hand, or use a systemd host.`,
    );
  }
  if (facts.init !== 'systemd') {
    throw new K3sEtcdError(
      'provision-unsupported',
      `${host.name} does not run systemd (no /run/systemd/system): provisioning etcd needs systemd.`,
    );
  }
  if (!facts.arch) {
    throw new K3sEtcdError(
      'provision-unsupported',
      `${host.name} has the architecture "${facts.machine}", for which etcd publishes no release (supported: x86_64, aarch64, armv7l, ppc64le, s390x).`,
    );
  }
}

export async function readFacts(
  t: HostTransport,
  cluster: Cluster,
  host: Host,
  signal?: AbortSignal,
): Promise<HostFacts> {
  const r = await t.exec(factsCommand(cluster.etcd.dataDir), {
    sudo: true,
    ...(signal ? { signal } : {}),
  });
  if (r.code !== 0) {
    throw new K3sEtcdError(
      'provision-step-failed',
      `${host.name}: cannot read the host's facts: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  }
  const facts = parseFacts(r.stdout);
  checkFacts(host, facts);
  return facts;
}

/** A value systemd's EnvironmentFile and etcd take as it is: URLs, paths, names, tokens. */
const ENV_PLAIN = /^[A-Za-z0-9_@%+=:,./[\]-]*$/;

/**
 * One `KEY=value` line of a systemd EnvironmentFile. A value with a line break or another control
 * character is refused (it would start a line, another variable, of its own); a plain value is
 * written as it is, any other in single quotes (which systemd takes literally), and a value
 * holding a single quote is refused.
 */
export function envLine(key: string, value: string): string {
  if (
    !/^[A-Z][A-Z0-9_]*$/.test(key) ||
    hasControl(value) ||
    (!ENV_PLAIN.test(value) && value.includes("'"))
  ) {
    throw new K3sEtcdError(
      'provision-refused',
      `${key}=${JSON.stringify(value)} cannot be written to ${ENV_FILE}: a line break, a control character or a quote in a value would change what etcd is started with. Nothing was run.`,
    );
  }
  return `${key}=${ENV_PLAIN.test(value) ? value : `'${value}'`}`;
}

/**
 * An env file's `text` with its ETCD_INITIAL_* lines replaced by `lines` (at the first one's
 * place): a restore and a quorum recovery make them say what the data now is.
 */
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

/** The cluster marker in the data dir: a host never joins a cluster its data does not belong to. */
export function markerText(cluster: Cluster): string {
  return `cluster=${cluster.name}\ntoken=${cluster.etcd.initialClusterToken}\n`;
}

/**
 * A shell test: `dataDir`'s marker is a regular file (not a link: the folder is the etcd user's)
 * naming `cluster`.
 */
export function markerMatches(dataDir: string, cluster: Cluster): string {
  const mk = q(`${dataDir}/${MARKER}`);
  return `{ [ ! -L ${mk} ] && [ -f ${mk} ] && [ "$(cat ${mk})" = ${q(markerText(cluster).trimEnd())} ]; }`;
}
