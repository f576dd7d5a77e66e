/**
 * K3s servers back on SQLite, as host plans: K3s on SQLite runs one server, so the others are
 * stopped and disabled; the one that keeps running gets the verified state.db (its old state.db
 * files moved aside under dated names, never deleted), config.yaml without the datastore keys
 * (the old file kept beside it), K3s started, node Ready. The way back of a failed re-point puts
 * the old config.yaml back and restarts K3s on etcd, whose data the move never changes.
 * What a server holds is read first (`readSqliteFacts`): config.yaml (hostile: see
 * sqliteConfig.ts), the state.db files already there, and the other places K3s could take a
 * datastore endpoint from, which a config.yaml edit would not undo.
 */
import { K3sEtcdError } from '../errors';
import type { Host } from '../inventory/types';
import { journalTail, spaceCheck } from '../plan/snippets';
import { fileStep, sha256, systemdGuard, type HostPlan, type Step } from '../plan/steps';
import type { HostTransport } from '../plan/runner';
import { shellQuote as q } from '../ssh/quote';
import { K3S_BIN, K3S_CONFIG, K3S_DB_DIR, K3S_SQLITE, nodeName, type K3sFacts } from './server';

/** The files of K3s's SQLite state that are moved aside before the new one goes in. */
export const SQLITE_FILES = ['state.db', 'state.db-wal', 'state.db-shm', 'state.db-journal'];

/** The dated name a state.db file is moved aside to (`state.db.old-20260101T120000Z`). */
export const asideName = (file: string, stamp: string): string => `${file}.old-${stamp}`;

/** Other places K3s reads a datastore endpoint from (K3s: config.yaml.d, the unit, its env file). */
const DROPINS = '/etc/rancher/k3s/config.yaml.d';
const ENV_FILES = ['/etc/systemd/system/k3s.service.env', '/etc/default/k3s'];

export interface SqliteFacts {
  /** config.yaml as the host has it (holds the token: never shown). */
  config: Buffer;
  /** Which of SQLITE_FILES exist in K3s's db folder. */
  dbFiles: string[];
  /** Where else a datastore endpoint is named (config.yaml.d files, the unit, an env file). */
  otherEndpoints: string[];
  /** `systemctl is-enabled k3s` says enabled. */
  enabled: boolean;
}

const FACTS = [
  `echo "enabled=$(systemctl is-enabled k3s 2>/dev/null || true)"`,
  `for f in ${SQLITE_FILES.join(' ')}; do if [ -e ${K3S_DB_DIR}/$f ] || [ -L ${K3S_DB_DIR}/$f ]; then echo "db=$f"; fi; done`,
  `for f in ${DROPINS}/*.yaml ${DROPINS}/*.yml; do if [ -f "$f" ] && grep -qE '^["'"'"']?datastore-endpoint' "$f"; then echo "other=$f"; fi; done`,
  `if systemctl cat k3s 2>/dev/null | grep -qE -- '--datastore-endpoint|K3S_DATASTORE_ENDPOINT'; then echo "other=the k3s unit"; fi`,
  ...ENV_FILES.map(
    (f) => `if grep -qs '^[[:space:]]*K3S_DATASTORE_ENDPOINT' ${f}; then echo "other=${f}"; fi`,
  ),
].join('\n');

/** Reads what the re-point needs from a server (config.yaml, its state.db files, other endpoints). */
export async function readSqliteFacts(
  t: HostTransport,
  host: Host,
  signal?: AbortSignal,
): Promise<SqliteFacts> {
  const opts = { sudo: true, ...(signal ? { signal } : {}) };
  const cfg = await t.exec(`cat ${K3S_CONFIG}`, opts);
  if (cfg.code !== 0)
    throw new K3sEtcdError(
      'provision-refused',
      `${host.name}: cannot read ${K3S_CONFIG} (${cfg.stderr.trim() || `exit ${cfg.code}`}): is it a K3s server installed by k3s-etcd? Nothing was changed.`,
    );
  const r = await t.exec(FACTS, opts);
  const lines = r.stdout.split('\n');
  const values = (k: string) =>
    lines.filter((l) => l.startsWith(`${k}=`)).map((l) => l.slice(k.length + 1).trim());
  return {
    config: Buffer.from(cfg.stdout),
    dbFiles: values('db').filter((f) => SQLITE_FILES.includes(f)),
    otherEndpoints: values('other').filter((f) => f.length > 0 && f.length < 300),
    enabled: values('enabled')[0] === 'enabled',
  };
}

/** K3s stopped on `host` (and with `disable`, disabled: it must not start again on its own). */
export function stopK3sPlan(host: Host, opts: { disable: boolean }): HostPlan {
  const check = opts.disable
    ? '! systemctl is-active -q k3s && ! systemctl is-enabled -q k3s 2>/dev/null'
    : '! systemctl is-active -q k3s';
  return {
    host: host.name,
    title: `K3s server ${host.name}: stopped${opts.disable ? ' and disabled' : ''} before etcd is read`,
    payloads: [],
    steps: [
      systemdGuard('K3s runs under systemd'),
      {
        kind: 'command',
        id: 'stop',
        title: opts.disable
          ? 'k3s.service stopped and disabled (systemctl disable --now k3s): K3s on SQLite runs one server'
          : 'k3s.service stopped (systemctl stop k3s) until its state.db is in place',
        check,
        run: `${opts.disable ? 'systemctl disable --now k3s' : 'systemctl stop k3s'} || fail "systemctl could not stop k3s"\n! systemctl is-active -q k3s || fail "k3s is still active after the stop"`,
      },
    ],
  };
}

export interface SqlitePlanInput {
  host: Host;
  facts: K3sFacts;
  /** The new config.yaml (without the datastore keys). */
  config: Buffer;
  /** The verified state.db on this machine. */
  stateDb: { localPath: string; sha256: string; bytes: number };
  /** The UTC stamp of the moved-aside names. */
  stamp: string;
  readySeconds: number;
}

/**
 * A k3s.service that failed to start too often is refused by systemd ("start request repeated
 * too quickly") until its failed state is cleared: cleared before it is started.
 */
const resetFailed: Step = {
  kind: 'command',
  id: 'reset',
  title: "k3s.service's failed state cleared, if it has one",
  check: '! systemctl is-failed -q k3s',
  run: 'systemctl reset-failed k3s || true',
};

const readyCheck = (node: string) =>
  `${K3S_BIN} kubectl get node ${q(node)} --no-headers 2>/dev/null | awk '{print $2}' | grep -q '^Ready'`;

/** The kept server on SQLite: state.db in place (the old moved aside), config.yaml, start, Ready. */
export function sqliteServerPlan(input: SqlitePlanInput): HostPlan {
  const { host, facts, config, stateDb, stamp, readySeconds } = input;
  if (!/^\d{8}T\d{6}Z$/.test(stamp)) throw new Error(`bad stamp ${stamp}`);
  if (!/^[0-9a-f]{64}$/.test(stateDb.sha256)) throw new Error('bad SHA-256');
  const node = nodeName(host, facts);
  const db = K3S_SQLITE;
  const done = `file_ok ${db} ${stateDb.sha256} 600 root root && [ ! -e ${db}-wal ] && [ ! -e ${db}-shm ]`;
  const moveAside = SQLITE_FILES.map((f) => {
    const from = `${K3S_DB_DIR}/${f}`;
    const to = `${K3S_DB_DIR}/${asideName(f, stamp)}`;
    return `if [ -e ${from} ] || [ -L ${from} ]; then\n  [ ! -e ${to} ] || fail "${to} exists already: nothing was moved"\n  rename_over ${from} ${to} || fail "cannot move ${from} aside"\nfi`;
  }).join('\n');
  const steps: Step[] = [
    systemdGuard('K3s runs under systemd'),
    {
      kind: 'guard',
      id: 'stopped',
      title: 'k3s.service is stopped (it must not write while its state changes)',
      check: '! systemctl is-active -q k3s',
      message: `"k3s.service is running on ${host.name} again: its state.db cannot be replaced under it. Nothing was changed here."`,
    },
    {
      kind: 'guard',
      id: 'space',
      title: `room for state.db (${Math.ceil(stateDb.bytes / 1024)} KB) in ${K3S_DB_DIR}`,
      check: spaceCheck(K3S_DB_DIR, Math.ceil(stateDb.bytes / 1024) + 1024),
      message: `"not enough free space for state.db (${Math.ceil(stateDb.bytes / 1024)} KB) under $p: free some first"`,
    },
    {
      kind: 'command',
      id: 'state',
      title: `${db}: the verified file (root, 0600), SHA-256 checked on the host; the state.db files there before moved aside as *.old-${stamp}`,
      check: done,
      run: [
        `[ -d ${K3S_DB_DIR} ] || install -d -m 0700 -o root -g root ${K3S_DB_DIR} || fail "cannot create ${K3S_DB_DIR}"`,
        moveAside,
        `put_file "$STAGE/state.db" ${db} 600 root root 0 || fail "cannot put ${db} in place"`,
        `[ "$(sha256sum ${db} | cut -d' ' -f1)" = ${stateDb.sha256} ] || fail "${db} on the host does not have the SHA-256 of the verified file"`,
      ].join('\n'),
      writes: [db],
    },
    fileStep({
      id: 'config',
      title: `${K3S_CONFIG} without the datastore keys (0600; the old file kept beside it)`,
      path: K3S_CONFIG,
      content: config,
      mode: 0o600,
      payload: 'config.yaml',
      backup: true,
    }),
    resetFailed,
    {
      kind: 'service',
      id: 'service',
      title: 'k3s.service enabled and started on SQLite',
      unit: 'k3s',
      restartOn: ['state', 'config'],
    },
    {
      kind: 'wait',
      id: 'ready',
      title: `node ${node} is Ready on SQLite`,
      check: readyCheck(node),
      seconds: readySeconds,
      onTimeout: journalTail('k3s'),
      message: `"node ${node} did not become Ready on SQLite in ${readySeconds} s: see the K3s log above"`,
    },
  ];
  return withConfigPayload(
    {
      host: host.name,
      title: `K3s server ${host.name}: back on SQLite with the state read from etcd`,
      payloads: [
        { name: 'state.db', localPath: stateDb.localPath, sha256: stateDb.sha256, step: 'state' },
      ],
      steps,
    },
    config,
  );
}

/** The config.yaml payload a plan's file step names (kept apart: it holds the token). */
export function withConfigPayload(plan: HostPlan, config: Buffer): HostPlan {
  return {
    ...plan,
    payloads: [
      ...plan.payloads,
      { name: 'config.yaml', content: config, sha256: sha256(config), step: 'config' },
    ],
  };
}

/** The way back after a failed re-point: the old config.yaml, K3s restarted on etcd, Ready. */
export function backOnEtcdPlan(
  host: Host,
  facts: K3sFacts,
  oldConfig: Buffer,
  readySeconds: number,
): HostPlan {
  const node = nodeName(host, facts);
  return withConfigPayload(
    {
      host: host.name,
      title: `K3s server ${host.name}: put back on etcd after a failed move to SQLite`,
      payloads: [],
      steps: [
        fileStep({
          id: 'config',
          title: `${K3S_CONFIG}: the old file with the datastore keys, back (the SQLite one kept beside it)`,
          path: K3S_CONFIG,
          content: oldConfig,
          mode: 0o600,
          payload: 'config.yaml',
          backup: true,
        }),
        {
          // A K3s failing on SQLite is in systemd's restart loop, close to its start limit
          // ("start request repeated too quickly" ends the loop for good): the loop is stopped
          // and the failed state cleared before the start, so the start always counts.
          kind: 'command',
          id: 'service',
          title: 'k3s.service stopped, its failed state cleared, enabled and started on etcd',
          check: 'systemctl is-active -q k3s && ! changed config',
          run: [
            'systemctl stop k3s 2>/dev/null || true',
            'systemctl reset-failed k3s 2>/dev/null || true',
            'systemctl enable -q k3s || fail "cannot enable k3s"',
            'systemctl start --no-block k3s || fail "cannot start k3s"',
          ].join('\n'),
        },
        {
          kind: 'wait',
          id: 'ready',
          title: `node ${node} is Ready on etcd`,
          check: readyCheck(node),
          seconds: readySeconds,
          onTimeout: journalTail('k3s'),
          message: `"node ${node} did not become Ready on etcd in ${readySeconds} s: see the K3s log above"`,
        },
      ],
    },
    oldConfig,
  );
}
