/**
 * A K3s server on the external etcd, as a plan: the datastore client certificate set in
 * /etc/rancher/k3s/etcd, /etc/rancher/k3s/config.yaml (0600: it holds the token) naming every
 * member's client URL and the three files, then the installer (online, or offline from the
 * workspace) or, for an installed K3s, an explicit restart (the installer does not restart on
 * config changes), then wait until the node is Ready.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { K3sEtcdError } from '../errors';
import { isIpOrHostname } from '../inventory/addressFormat';
import type { Cluster, Host } from '../inventory/types';
import { clientUrl, etcdHosts } from '../inventory/select';
import {
  fileStep,
  oneLine,
  sha256,
  systemdGuard,
  type HostPlan,
  type Payload,
  type Step,
} from '../plan/steps';
import { journalTail } from '../plan/snippets';
import { shellQuote as q } from '../ssh/quote';
import { tokenMatches } from '../k3sHost/token';
import { K3S_DATASTORE_FILES, K3S_ETCD_DIR } from '../k3sHost/datastoreFiles';
import { DATASTORE_STEP_IDS, datastoreFileSteps } from './datastoreSteps';

export const K3S_CONFIG = '/etc/rancher/k3s/config.yaml';
export { K3S_ETCD_DIR, K3S_DATASTORE_FILES };
export const K3S_SERVER_DIR = '/var/lib/rancher/k3s/server';
export const K3S_TOKEN_FILE = `${K3S_SERVER_DIR}/token`;
export const K3S_DB_DIR = `${K3S_SERVER_DIR}/db`;
export const K3S_SQLITE = `${K3S_DB_DIR}/state.db`;
export const K3S_KUBECONFIG = '/etc/rancher/k3s/k3s.yaml';
export const K3S_BIN = '/usr/local/bin/k3s';
export const K3S_INSTALLER_URL = 'https://get.k3s.io';
/** What `install: offline` expects in the offline folder. */
export const OFFLINE_FILES = { binary: 'k3s', installer: 'install.sh' } as const;

/** Every etcd member's client URL, comma-separated: K3s's `datastore-endpoint`. */
export function datastoreEndpoint(cluster: Cluster): string {
  const members = etcdHosts(cluster);
  if (members.length === 0) {
    throw new K3sEtcdError(
      'usage',
      `Cluster ${cluster.name} has no etcd member: the datastore endpoint list would be empty. Add hosts with the role etcd.`,
    );
  }
  return members.map((h) => clientUrl(cluster, h)).join(',');
}

const yamlString = (s: string) => JSON.stringify(s);

/** /etc/rancher/k3s/config.yaml for `host`. Never `cluster-init` (k3s#4046). */
export function renderK3sConfig(cluster: Cluster, token: string): string {
  const k = cluster.k3s;
  const lines = [
    `# Written by k3s-etcd: K3s server of cluster ${oneLine(cluster.name)} on its external etcd.`,
    '# Mode 0600: it holds the cluster token. Edit k3s-etcd.yaml and re-run instead of this file.',
    `token: ${yamlString(token)}`,
    `datastore-endpoint: ${yamlString(datastoreEndpoint(cluster))}`,
    `datastore-cafile: ${K3S_DATASTORE_FILES.ca}`,
    `datastore-certfile: ${K3S_DATASTORE_FILES.cert}`,
    `datastore-keyfile: ${K3S_DATASTORE_FILES.key}`,
  ];
  if (k.disable.length > 0) lines.push('disable:', ...k.disable.map((d) => `  - ${d}`));
  if (k.writeKubeconfigMode)
    lines.push(`write-kubeconfig-mode: ${yamlString(k.writeKubeconfigMode)}`);
  if (k.tlsSan.length > 0) lines.push('tls-san:', ...k.tlsSan.map((s) => `  - ${yamlString(s)}`));
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// What the host has

export interface K3sFacts {
  /** `k3s --version`'s first line, when installed. */
  version?: string;
  /** systemd knows a k3s unit. */
  installed: boolean;
  active: boolean;
  /** The unit starts K3s with --cluster-init (embedded etcd): incompatible with an endpoint. */
  clusterInit: boolean;
  /** K3s's SQLite state exists, with its size in bytes. */
  sqliteBytes?: number;
  /** K3s's embedded etcd data exists. */
  embeddedEtcd: boolean;
  /** The token file's text (a secret: compared, never logged). */
  token?: string;
  hostname: string;
  curl: boolean;
  etcdctl?: string;
  sqlite3: boolean;
}

export function k3sFactsCommand(): string {
  return [
    `echo "installed=$(systemctl cat k3s >/dev/null 2>&1 && echo yes || echo no)"`,
    `echo "active=$(systemctl is-active k3s 2>/dev/null || true)"`,
    `echo "version=$({ ${K3S_BIN} --version || k3s --version; } 2>/dev/null | head -n 1)"`,
    `echo "clusterinit=$(systemctl cat k3s 2>/dev/null | grep -q -- '--cluster-init' && echo yes || echo no)"`,
    `echo "sqlite=$(stat -c %s ${K3S_SQLITE} 2>/dev/null || true)"`,
    `echo "embedded=$([ -d ${K3S_DB_DIR}/etcd/member ] && echo yes || echo no)"`,
    `echo "hostname=$(hostname)"`,
    `echo "curl=$(command -v curl >/dev/null 2>&1 && echo yes || echo no)"`,
    `echo "etcdctl=$(command -v etcdctl 2>/dev/null || { [ -x /usr/local/bin/etcdctl ] && echo /usr/local/bin/etcdctl; } || true)"`,
    `echo "sqlite3=$(command -v sqlite3 >/dev/null 2>&1 && echo yes || echo no)"`,
    `if [ -f ${K3S_TOKEN_FILE} ]; then printf 'token='; head -n 1 ${K3S_TOKEN_FILE}; fi`,
  ].join('\n');
}

export function parseK3sFacts(out: string): K3sFacts {
  const kv = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const sqlite = kv.get('sqlite');
  const version = kv.get('version');
  const token = kv.get('token');
  const etcdctl = kv.get('etcdctl');
  return {
    installed: kv.get('installed') === 'yes',
    active: kv.get('active') === 'active',
    ...(version ? { version } : {}),
    clusterInit: kv.get('clusterinit') === 'yes',
    ...(sqlite ? { sqliteBytes: Number(sqlite) } : {}),
    embeddedEtcd: kv.get('embedded') === 'yes',
    ...(token ? { token } : {}),
    hostname: kv.get('hostname') ?? '',
    curl: kv.get('curl') === 'yes',
    ...(etcdctl ? { etcdctl } : {}),
    sqlite3: kv.get('sqlite3') === 'yes',
  };
}

/**
 * Refusals that need no script: K3s started with --cluster-init or holding embedded etcd data,
 * SQLite state without a backup, a token that is not the cluster's.
 */
export function checkK3sFacts(
  host: Host,
  facts: K3sFacts,
  opts: {
    token: string;
    backedUp: boolean;
    /**
     * The embedded-to-external move (`migrate embedded-to-external`), after its snapshot was
     * restored into this etcd and verified: the flag and the embedded data are the move's to
     * set aside (`embeddedMoveSteps`), so they are not refused.
     */
    embeddedMove?: boolean;
  },
): void {
  if (facts.clusterInit && !opts.embeddedMove) {
    throw new K3sEtcdError(
      'provision-refused',
      `${host.name}: k3s.service starts K3s with --cluster-init (embedded etcd), which cannot be combined with a datastore endpoint (k3s#4046). Remove the flag from the unit (or uninstall K3s) first.`,
    );
  }
  if (facts.embeddedEtcd && !opts.embeddedMove) {
    throw new K3sEtcdError(
      'provision-refused',
      `${host.name}: ${K3S_DB_DIR}/etcd holds K3s's embedded etcd data. Moving an embedded-etcd server to the external etcd is not done in place: back it up (etcd snapshot) and set up a new server.`,
    );
  }
  if (facts.sqliteBytes !== undefined && !opts.backedUp) {
    throw new K3sEtcdError(
      'k3s-not-backed-up',
      `${host.name}: K3s keeps its state in SQLite (${K3S_SQLITE}, ${Math.ceil(facts.sqliteBytes / 1024)} KB) and there is no backup of it in the workspace. Back it up first (k3s-etcd k3s backup --host ${host.name}, or "Back Up K3s State"); pointing K3s at etcd does not carry that state over (migrate it, or start empty).`,
    );
  }
  if (facts.token && !tokenMatches(opts.token, facts.token)) {
    throw new K3sEtcdError(
      'k3s-token',
      `${host.name}: ${K3S_TOKEN_FILE} holds another token than the cluster's: servers of one cluster must share one token. Use that server's token for the cluster (k3s-etcd keeps the first it finds when none is stored), or reinstall the host.`,
    );
  }
}

/**
 * The node name K3s registers for `host`: the name the host gives itself (`hostname`), which is
 * the host's word and so refused unless it is a plain host name; the inventory name when the
 * host gave none.
 */
export function nodeName(host: Host, facts: K3sFacts): string {
  const name = facts.hostname;
  if (!name) return host.name;
  if (isIP(name) !== 0 || !isIpOrHostname(name)) {
    throw new K3sEtcdError(
      'provision-refused',
      `${host.name} calls itself ${JSON.stringify(name)} (hostname), which is not a host name K3s can register as a node (letters, digits, '-' and '.'): set a plain host name there (hostnamectl set-hostname NAME). Nothing was run.`,
    );
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// The plan

export interface K3sPlanInput {
  cluster: Cluster;
  host: Host;
  facts: K3sFacts;
  token: string;
  /** The embedded-to-external move only: its UTC time names what is set aside. */
  embeddedMove?: { stamp: string };
}

/** Where the move keeps K3s's embedded etcd data (dated, never deleted). */
export const embeddedAside = (stamp: string) => `${K3S_DB_DIR}/etcd.before-external-${stamp}`;

/**
 * The embedded-to-external move's own steps, K3s stopped: no config.yaml.d file still asks for
 * cluster-init, `--cluster-init` out of the unit (its file kept beside it), the embedded data
 * moved aside. Only `migrate embedded-to-external` asks for them, once the data is verified in
 * the external etcd.
 */
function embeddedMoveSteps(stamp: string): Step[] {
  const data = `${K3S_DB_DIR}/etcd`;
  const aside = embeddedAside(stamp);
  const flag = `[[:space:]]*'\\{0,1\\}--cluster-init\\(=[a-z]*\\)\\{0,1\\}'\\{0,1\\}`;
  return [
    {
      kind: 'guard',
      id: 'stopped',
      title: 'K3s is stopped (it ran on the embedded etcd)',
      check: '! systemctl is-active -q k3s',
      message: '"K3s is running here: the move stops it before its data is moved aside"',
    },
    {
      kind: 'guard',
      id: 'dropins',
      title: '/etc/rancher/k3s/config.yaml.d names no cluster-init',
      check: "! grep -qs '^cluster-init' /etc/rancher/k3s/config.yaml.d/*.yaml",
      message:
        '"a file in /etc/rancher/k3s/config.yaml.d sets cluster-init: remove that line, then run the move again"',
    },
    {
      kind: 'command',
      id: 'cluster-init',
      title: `--cluster-init out of k3s.service (the old unit kept as <unit>.before-external-${stamp})`,
      check: "! systemctl cat k3s 2>/dev/null | grep -q -- '--cluster-init'",
      run: [
        'f=$(systemctl show -p FragmentPath --value k3s)',
        '[ -f "$f" ] || fail "k3s.service has no unit file to edit"',
        `cp -p "$f" "$f.before-external-${stamp}" || fail "cannot keep a copy of $f"`,
        `sed -i "s/${flag}//g" "$f" || fail "cannot edit $f"`,
        'systemctl daemon-reload',
        `if systemctl cat k3s | grep -q -- '--cluster-init'; then fail "k3s.service still passes --cluster-init (a drop-in?): remove it, then run the move again"; fi`,
      ].join('\n'),
    },
    {
      kind: 'command',
      id: 'embedded-aside',
      title: `K3s's embedded etcd data ${data} moved aside to ${aside} (kept, never deleted)`,
      check: `[ ! -e ${q(data)} ]`,
      run: [
        'if systemctl is-active -q k3s; then fail "K3s is running: not moving its data"; fi',
        `[ ! -e ${q(aside)} ] || fail "${aside} already exists"`,
        `mv ${q(data)} ${q(aside)} || fail "cannot move ${data} aside"`,
      ].join('\n'),
    },
  ];
}

async function readWorkspace(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch {
    throw new K3sEtcdError('certs-missing', `${path} is missing: ${what}.`);
  }
}

/** The datastore client set (CA, the `k3s` client certificate and key) from the workspace. */
export async function datastoreClientFiles(
  cluster: Cluster,
): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const how =
    'generate the certificates first (K3s etcd: Generate Certificates, or `k3s-etcd certs generate`)';
  const [ca, cert, key] = await Promise.all([
    readWorkspace(join(cluster.pki.dir, 'ca.pem'), how),
    readWorkspace(join(cluster.pki.dir, 'client', 'k3s.pem'), how),
    readWorkspace(join(cluster.pki.dir, 'client', 'k3s-key.pem'), how),
  ]);
  return { ca, cert, key };
}

export async function planK3sServer(input: K3sPlanInput): Promise<HostPlan> {
  const { cluster, host, facts, token, embeddedMove } = input;
  const node = nodeName(host, facts);
  const k = cluster.k3s;
  const files = await datastoreClientFiles(cluster);
  const config = Buffer.from(renderK3sConfig(cluster, token));
  const datastore = datastoreFileSteps(files);
  const payloads: Payload[] = [
    ...datastore.payloads,
    { name: 'config.yaml', content: config, sha256: sha256(config), step: 'config' },
  ];
  const steps: Step[] = [
    systemdGuard('K3s needs it here'),
    {
      kind: 'dir',
      id: 'etc',
      title: '/etc/rancher/k3s (0755)',
      path: '/etc/rancher/k3s',
      mode: 0o755,
      owner: 'root',
      group: 'root',
    },
    {
      kind: 'dir',
      id: 'etcd-dir',
      title: `${K3S_ETCD_DIR} (0700)`,
      path: K3S_ETCD_DIR,
      mode: 0o700,
      owner: 'root',
      group: 'root',
    },
    ...datastore.steps,
    fileStep({
      id: 'config',
      title: `${K3S_CONFIG} (0600: holds the token) with the datastore endpoint and files`,
      path: K3S_CONFIG,
      content: config,
      mode: 0o600,
      payload: 'config.yaml',
      backup: true,
    }),
    ...(embeddedMove ? embeddedMoveSteps(embeddedMove.stamp) : []),
  ];

  const version = k.version ? `INSTALL_K3S_VERSION=${q(k.version)} ` : '';
  const installed = 'systemctl cat k3s >/dev/null 2>&1';
  if (k.install === 'existing') {
    steps.push({
      kind: 'guard',
      id: 'installed',
      title: 'K3s is installed (k3s.install: existing)',
      check: installed,
      message: `"K3s is not installed on ${host.name}: set k3s.install to online or offline in k3s-etcd.yaml"`,
    });
  } else if (k.install === 'offline') {
    const binary = join(k.offlineDir, OFFLINE_FILES.binary);
    const installer = join(k.offlineDir, OFFLINE_FILES.installer);
    const [bin, script] = await Promise.all([
      readWorkspace(binary, `put the k3s binary for ${host.name} there (k3s.install: offline)`),
      readWorkspace(installer, "put K3s's install.sh there (k3s.install: offline)"),
    ]);
    payloads.push(
      { name: 'k3s', localPath: binary, sha256: sha256(bin), step: 'binary' },
      { name: 'install.sh', content: script, sha256: sha256(script), step: 'install' },
    );
    steps.push(
      fileStep({
        id: 'binary',
        title: `k3s binary ${K3S_BIN} (from the offline folder)`,
        path: K3S_BIN,
        content: bin,
        mode: 0o755,
        payload: 'k3s',
      }),
      {
        kind: 'command',
        id: 'install',
        title: 'install K3s as a server (offline: INSTALL_K3S_SKIP_DOWNLOAD=true)',
        check: installed,
        run: `INSTALL_K3S_SKIP_DOWNLOAD=true ${version}INSTALL_K3S_EXEC=server sh "$STAGE/install.sh" || fail "K3s's install.sh failed"`,
      },
    );
  } else {
    steps.push({
      kind: 'command',
      id: 'install',
      title: `install K3s as a server (online: ${K3S_INSTALLER_URL}${k.version ? `, ${k.version}` : ''})`,
      check: installed,
      run: `command -v curl >/dev/null 2>&1 || fail "curl is needed for the online installer: install it, or use k3s.install: offline"\ncurl -sfL ${K3S_INSTALLER_URL} | ${version}INSTALL_K3S_EXEC=server sh -s - || fail "the K3s installer failed (no internet? use k3s.install: offline)"`,
    });
  }
  steps.push(
    {
      kind: 'service',
      id: 'service',
      title: 'k3s.service enabled, running; restarted when its datastore files or config changed',
      unit: 'k3s',
      restartOn: [...DATASTORE_STEP_IDS, 'config', ...(embeddedMove ? ['cluster-init'] : [])],
      ...(k.install === 'existing' ? {} : { startedBy: 'install' }),
    },
    {
      kind: 'wait',
      id: 'ready',
      title: `node ${node} is Ready (k3s kubectl get node)`,
      check: `${K3S_BIN} kubectl get node ${q(node)} --no-headers 2>/dev/null | awk '{print $2}' | grep -q '^Ready'`,
      seconds: 300,
      onTimeout: journalTail('k3s'),
      message: `"node ${node} did not become Ready in 300 s: see the K3s log above (journalctl -u k3s)"`,
    },
  );
  return {
    host: host.name,
    title: `K3s server ${host.name} of cluster ${cluster.name} on the external etcd`,
    steps,
    payloads,
  };
}

/** config.yaml replaced by `config` (0600, old one kept), K3s restarted, node Ready. */
export function repointPlan(host: Host, facts: K3sFacts, config: Buffer): HostPlan {
  const node = nodeName(host, facts);
  return {
    host: host.name,
    title: `K3s server ${host.name}: datastore endpoint after an address change`,
    payloads: [{ name: 'config.yaml', content: config, sha256: sha256(config), step: 'config' }],
    steps: [
      fileStep({
        id: 'config',
        title: `${K3S_CONFIG}: datastore-endpoint names the new client URL (0600)`,
        path: K3S_CONFIG,
        content: config,
        mode: 0o600,
        payload: 'config.yaml',
        backup: true,
      }),
      {
        kind: 'service',
        id: 'service',
        title: 'k3s.service restarted with the new endpoint',
        unit: 'k3s',
        restartOn: ['config'],
      },
      {
        kind: 'wait',
        id: 'ready',
        title: `node ${node} is Ready`,
        check: `${K3S_BIN} kubectl get node ${q(node)} --no-headers 2>/dev/null | awk '{print $2}' | grep -q '^Ready'`,
        seconds: 300,
        onTimeout: journalTail('k3s'),
        message: `"node ${node} did not become Ready in 300 s after the restart: see the K3s log above"`,
      },
    ],
  };
}
