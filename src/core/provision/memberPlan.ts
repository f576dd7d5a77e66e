/**
 * The article's "install etcd + systemd unit + TLS" as a plan per member host (the binaries it
 * installs are resolved in binaries.ts): the etcd user,
 * the binaries (downloaded on the host with the release checksums, uploaded from this machine,
 * or already installed), /etc/etcd/pki with the member's certificates (keys 0600 owned by
 * etcd), the data dir (0700, never deleted or re-initialised), an env file (0600) and a unit
 * with mutual TLS on both the client and the peer side, then start and wait until healthy.
 */
import { isIP } from 'node:net';
import type { Cluster, Host } from '../inventory/types';
import { clientUrl, hostPort, peerUrl } from '../inventory/select';
import { shellQuote as q } from '../ssh/quote';
import {
  fileStep,
  oneLine,
  systemdGuard,
  type HostPlan,
  type Payload,
  type Step,
} from '../plan/steps';
import { ETCD_EXITS, FREE_MB, dq, journalTail, spaceCheck } from '../plan/snippets';
import {
  BIN_DIR,
  ENV_FILE,
  ETC,
  MARKER,
  PKI,
  UNIT_FILE,
  checkDataDir,
  envLine,
  markerMatches,
  markerText,
  type HostFacts,
} from '../etcd/memberHost';
import { extraArgsLine, tuningEnv } from '../etcdRelease/flags';
import { binaryStep, type BinarySource } from './binaries';
import {
  MEMBER_CERT_STEP_IDS,
  memberCertSteps,
  workspaceMemberCerts,
  type MemberCertFiles,
} from './memberCerts';

export interface MemberPlanInput {
  cluster: Cluster;
  host: Host;
  facts: HostFacts;
  binaries: BinarySource;
  /** `name=peerURL,...` for a first start. */
  initialCluster: string;
  initialState: 'new' | 'existing';
  /** Joins as a learner: ready when it answers `endpoint status` (it refuses quorum reads). */
  learner?: boolean;
  /** The member's certificate files (default: the workspace's); stand-ins for a dry run. */
  certs?: MemberCertFiles;
}

const isLoopback = (a: string) => /^127\./.test(a) || a === '::1' || a === 'localhost';

/**
 * The data dir is given to the etcd user (chown, chmod 0700) only when it is new, empty, already
 * etcd's, or carries the marker this project writes, and etcd data in it belongs to this cluster.
 * A folder that is a symbolic link, or that holds another user's files, is refused before anything
 * on the host changes: etcd.dataDir may name a folder that already exists for something else.
 */
export function dataDirGuards(cluster: Cluster, data: string): Step[] {
  const d = q(data);
  const mk = q(`${data}/${MARKER}`);
  return [
    {
      kind: 'guard',
      id: 'data-owner',
      title: `data dir ${data} is new or belongs to cluster ${cluster.name}`,
      // The marker lies in a folder the etcd user owns: read only as a regular file, not a link.
      check: `[ ! -d ${q(`${data}/member`)} ] || ${markerMatches(data, cluster)}`,
      message: `"${dq(data)} already holds etcd data of another cluster ($(if [ -L ${mk} ] || { [ -e ${mk} ] && [ ! -f ${mk} ]; }; then echo 'its ${MARKER} is not a regular file'; else head -c 200 ${mk} 2>/dev/null | tr '\\n' ' ' || true; fi)). It is never deleted or re-initialised: move it aside (mv ${dq(data)} ${dq(data)}.old) if it is no longer needed, then run again"`,
    },
    {
      kind: 'guard',
      id: 'data-foreign',
      title: `data dir ${data} is new, empty or etcd's`,
      check:
        `[ ! -L ${d} ] && { [ ! -d ${d} ] || [ -d ${q(`${data}/member`)} ] || ` +
        `[ "$(stat -c %U ${d})" = etcd ] || { [ ! -L ${mk} ] && [ -f ${mk} ]; } || [ -z "$(ls -A ${d})" ]; }`,
      message: `"${dq(data)} $(if [ -L ${d} ]; then echo 'is a symbolic link: set etcd.dataDir to the folder itself'; else echo "already holds $(ls -A ${d} | wc -l) files or folders of $(stat -c %U ${d}), not etcd's, and no ${MARKER}: they would be given to the etcd user. Set etcd.dataDir to a new or empty folder, or move them away"; fi)"`,
    },
  ];
}

/** The env file etcd reads (ETCD_* variables are etcd's flags). */
export function envFile(input: MemberPlanInput): string {
  const { cluster, host, facts } = input;
  const client = clientUrl(cluster, host);
  // Also on the host's loopback, for local tools and SSH tunnels (not when the member address
  // is itself a loopback address: hosts sharing one loopback would collide on 127.0.0.1).
  // etcd binds IP addresses only: a member known by a host name listens on every interface.
  const isIp = isIP(host.address) !== 0;
  const listenPeer = isIp ? peerUrl(cluster, host) : `https://0.0.0.0:${cluster.etcd.peerPort}`;
  const listenClient = !isIp
    ? `https://0.0.0.0:${cluster.etcd.clientPort}`
    : isLoopback(host.address)
      ? client
      : `${client},https://${hostPort('127.0.0.1', cluster.etcd.clientPort)}`;
  // Kept as the host has them (parseFacts takes only whole ETCD_INITIAL_* lines).
  const initial =
    facts.hasData && facts.initialLines.length > 0
      ? facts.initialLines
      : [
          envLine('ETCD_INITIAL_ADVERTISE_PEER_URLS', peerUrl(cluster, host)),
          envLine('ETCD_INITIAL_CLUSTER', input.initialCluster),
          envLine('ETCD_INITIAL_CLUSTER_TOKEN', cluster.etcd.initialClusterToken),
          envLine('ETCD_INITIAL_CLUSTER_STATE', input.initialState),
        ];
  return [
    `# etcd member ${oneLine(host.memberName)} of cluster ${oneLine(cluster.name)}, written by k3s-etcd.`,
    '# Each ETCD_* variable is an etcd flag: https://etcd.io/docs/v3.5/op-guide/configuration/',
    '# ETCD_INITIAL_* only matter for the first start; once the member has data they are kept.',
    envLine('ETCD_NAME', host.memberName),
    envLine('ETCD_DATA_DIR', cluster.etcd.dataDir),
    envLine('ETCD_LISTEN_CLIENT_URLS', listenClient),
    envLine('ETCD_ADVERTISE_CLIENT_URLS', client),
    envLine('ETCD_LISTEN_PEER_URLS', listenPeer),
    ...(cluster.etcd.metricsPort
      ? [
          envLine(
            'ETCD_LISTEN_METRICS_URLS',
            `${cluster.etcd.metricsScheme ?? 'http'}://${hostPort(isIp ? host.address : '0.0.0.0', cluster.etcd.metricsPort)}`,
          ),
        ]
      : []),
    ...initial,
    'ETCD_CLIENT_CERT_AUTH=true',
    `ETCD_TRUSTED_CA_FILE=${PKI}/ca.pem`,
    `ETCD_CERT_FILE=${PKI}/server.pem`,
    `ETCD_KEY_FILE=${PKI}/server-key.pem`,
    'ETCD_PEER_CLIENT_CERT_AUTH=true',
    `ETCD_PEER_TRUSTED_CA_FILE=${PKI}/ca.pem`,
    `ETCD_PEER_CERT_FILE=${PKI}/peer.pem`,
    `ETCD_PEER_KEY_FILE=${PKI}/peer-key.pem`,
    // The inventory's tuning, with the flag names of this etcd version (etcdRelease/flags.ts).
    ...tuningEnv(cluster.etcd.tuning, cluster.etcd.version).map(([k, v]) => envLine(k, v)),
    '',
  ].join('\n');
}

export function unitFile(input: MemberPlanInput): string {
  const bin = input.binaries.kind === 'installed' ? input.binaries.path : `${BIN_DIR}/etcd`;
  return [
    '[Unit]',
    `Description=etcd member ${oneLine(input.host.memberName)} of cluster ${oneLine(input.cluster.name)} (managed by k3s-etcd)`,
    'Documentation=https://etcd.io/docs/',
    'After=network-online.target',
    'Wants=network-online.target',
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=notify',
    'User=etcd',
    'Group=etcd',
    `EnvironmentFile=${ENV_FILE}`,
    // etcd.extraArgs on the command line: etcd refuses an unknown flag there (flags.ts).
    `ExecStart=${[bin, ...extraArgsLine(input.cluster.etcd.tuning)].join(' ')}`,
    'Restart=always',
    'RestartSec=5s',
    'LimitNOFILE=65536',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Plans one member host. Reads the member's certificates from the workspace. */
export async function planEtcdMember(input: MemberPlanInput): Promise<HostPlan> {
  const { cluster, host, binaries } = input;
  const data = checkDataDir(cluster);
  const m = host.memberName;
  const certs = memberCertSteps(input.certs ?? (await workspaceMemberCerts(cluster, host)));
  const payloads: Payload[] = [...certs.payloads];
  if (binaries.kind === 'tarball') payloads.push(binaries.payload);
  if (binaries.kind === 'binaries') payloads.push(binaries.etcd, binaries.etcdctl);

  const env = envFile(input);
  const unit = unitFile(input);
  const marker = markerText(cluster);
  const addr = host.address;
  const port = cluster.etcd.clientPort;
  const peerPort = cluster.etcd.peerPort;
  const etcdctl =
    binaries.kind === 'installed'
      ? `${binaries.path.replace(/\/[^/]*$/, '')}/etcdctl`
      : `${BIN_DIR}/etcdctl`;
  const textFile = (
    id: string,
    title: string,
    path: string,
    content: string,
    mode: number,
    owner: string,
    group: string,
    backup = false,
  ): Step => fileStep({ id, title, path, content, mode, owner, group, backup });
  // `ip route get` says "local ..." for an address this host owns (loopback ranges included).
  const addressCheck = /^[\d.]+$|:/.test(addr)
    ? `ip route get ${q(addr)} 2>/dev/null | grep -q '^local '`
    : `{ ! command -v getent >/dev/null 2>&1; } || getent hosts ${q(addr)} >/dev/null`;
  const steps: Step[] = [
    systemdGuard('provisioning etcd needs systemd'),
    {
      kind: 'guard',
      id: 'address',
      title: `address ${addr} is on this host`,
      check: `{ ! command -v ip >/dev/null 2>&1; } || ${addressCheck}`,
      message: `"the inventory gives ${dq(addr)} for ${host.name}, but the host has: $(ip -o addr show 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\\n' ' '). Fix the address in k3s-etcd.yaml (after an IP change use Fix peer URL)"`,
    },
    ...dataDirGuards(cluster, data),
    {
      kind: 'guard',
      id: 'ports',
      title: `ports ${port} and ${peerPort} on ${addr} are free for etcd`,
      check: `case "$(systemctl show -p ActiveState --value etcd 2>/dev/null)" in active | activating | reloading) true ;; *) false ;; esac || { ! command -v ss >/dev/null 2>&1; } || ! ss -Hltn 2>/dev/null | awk '{print $4}' | grep -qE ${q(`^(${addr.replace(/\./g, '\\.')}|0\\.0\\.0\\.0|\\*|\\[::\\]):(${port}|${peerPort})$`)}`,
      message: `"a port etcd needs (${port} or ${peerPort}) on ${dq(addr)} is taken by another program: $(ss -Hltnp 2>/dev/null | grep -E ':(${port}|${peerPort}) ' | head -n 2 | tr '\\n' ' ')"`,
    },
    {
      kind: 'guard',
      id: 'space',
      title: 'at least 200 MB free for the binaries and the data',
      // df on the nearest existing folder: the data dir's parents may not exist yet.
      check: spaceCheck(data, 204800),
      message: `"only ${FREE_MB} MB free under $p: free some space (etcd's default quota is 2 GB)"`,
    },
    {
      kind: 'command',
      id: 'user',
      title: 'system user etcd',
      check: 'id -u etcd >/dev/null 2>&1',
      run: [
        'if command -v useradd >/dev/null 2>&1; then',
        `  if getent group etcd >/dev/null 2>&1; then g='-g etcd'; else g='--user-group'; fi`,
        `  useradd --system $g --no-create-home --home-dir ${q(data)} --shell /usr/sbin/nologin etcd || fail "cannot create the system user etcd"`,
        'else',
        `  { grep -q '^etcd:' /etc/group || addgroup -S etcd; } || fail "cannot create the group etcd"`,
        `  adduser -S -D -H -h ${q(data)} -s /sbin/nologin -G etcd etcd || fail "cannot create the system user etcd"`,
        'fi',
      ].join('\n'),
    },
    binaryStep(cluster.etcd.version, binaries),
    {
      kind: 'dir',
      id: 'etc',
      title: `${ETC} (0755)`,
      path: ETC,
      mode: 0o755,
      owner: 'root',
      group: 'root',
    },
    {
      kind: 'dir',
      id: 'pki',
      title: `${PKI} (0750, group etcd)`,
      path: PKI,
      mode: 0o750,
      owner: 'root',
      group: 'etcd',
    },
    ...certs.steps,
    {
      kind: 'dir',
      id: 'data',
      title: `data dir ${data} (0700, etcd)`,
      path: data,
      mode: 0o700,
      owner: 'etcd',
      group: 'etcd',
    },
    textFile(
      'marker',
      `cluster marker ${data}/${MARKER}`,
      `${data}/${MARKER}`,
      marker,
      0o600,
      'etcd',
      'etcd',
    ),
    textFile('env', `environment ${ENV_FILE} (0600)`, ENV_FILE, env, 0o600, 'root', 'root', true),
    textFile('unit', `systemd unit ${UNIT_FILE}`, UNIT_FILE, unit, 0o644, 'root', 'root', true),
    {
      kind: 'service',
      id: 'service',
      title: 'enable and start etcd (restart only when something it uses changed)',
      unit: 'etcd',
      restartOn: ['binaries', ...MEMBER_CERT_STEP_IDS, 'env', 'unit'],
      unitFileStep: 'unit',
    },
    {
      kind: 'wait',
      id: 'active',
      title: 'etcd is active (a new cluster waits for its quorum)',
      check: 'systemctl is-active -q etcd',
      seconds: 90,
      onTimeout: journalTail('etcd'),
      message:
        '"etcd did not become active within 90 s: the last lines of journalctl -u etcd are above"',
      crashLoop: {
        unit: 'etcd',
        times: ETCD_EXITS,
        message: `"etcd exited ${ETCD_EXITS} times since it was started: the last lines of journalctl -u etcd are above"`,
      },
    },
    {
      kind: 'wait',
      id: 'healthy',
      title: input.learner
        ? `etcd answers as a learner on https://${hostPort(addr, port)} over mutual TLS`
        : `etcd answers healthy on https://${hostPort(addr, port)} over mutual TLS`,
      check: `${q(etcdctl)} --endpoints=${q(clientUrl(cluster, host))} --cacert=${PKI}/ca.pem --cert=${PKI}/server.pem --key=${PKI}/server-key.pem --command-timeout=3s endpoint ${input.learner ? 'status' : 'health'} >/dev/null 2>&1`,
      seconds: 60,
      onTimeout: journalTail('etcd'),
      message:
        '"etcd is active but not healthy within 60 s: the last lines of journalctl -u etcd are above"',
    },
  ];
  return {
    host: host.name,
    title: `k3s-etcd: etcd member ${m} of cluster ${cluster.name} on ${host.name} (${addr})`,
    steps,
    payloads,
  };
}
