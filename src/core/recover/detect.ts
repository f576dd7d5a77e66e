/**
 * What a quorum recovery sees before it plans (only reads): per member of the inventory, what
 * `endpoint status` answers (etcd serves it from the member itself, quorum or not: raft index,
 * term, revision, the leader it knows, its ID), and over SSH what its host says: the unit's
 * state and since when, whether the data dir holds a member, and, for a member that does not
 * answer, the revision of its database.
 *
 * The database's revision, not the WAL's last index: etcd 3.4 to 3.6 ship no tool that reads a
 * WAL's last index (etcd-dump-logs is not in the release tarballs), and parsing WAL records here
 * would be a second, unchecked reader of etcd's format. `snapshot status` of the installed
 * etcdutl (etcdctl before 3.5) reads the revision of a bolt database reliably; it runs on a
 * copy in /tmp (removed after), so a database another process holds is never opened in place.
 * The revision only grows with applied writes, so it compares members of one cluster.
 */
import { errorMessage } from '../errors';
import { createEndpointClient, memberIdToHex } from '../etcd/client';
import { connectionFor, firstAnswering } from '../etcd/connection';
import { BIN_DIR, checkDataDir } from '../etcd/memberHost';
import { clientUrl, etcdHosts } from '../inventory/select';
import type { Cluster, Host } from '../inventory/types';
import { dfFree } from '../plan/snippets';
import { oneLine } from '../plan/steps';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { shellQuote as q } from '../ssh/quote';
import type { Detection, MemberSeen, SeenOnHost, SeenStatus } from './choose';

export interface DetectOptions {
  ssh: SshContext;
  signal?: AbortSignal;
  /** Per etcd request (default 3000 ms). */
  timeoutMs?: number;
}

/**
 * The read-only command run on a member host (as root: the data dir is 0700). With READ_DB=1,
 * the database is copied to /tmp (when there is room for it) and its revision read there.
 */
export function hostCommand(dataDir: string): string {
  const d = q(dataDir);
  const db = q(`${dataDir}/member/snap/db`);
  return [
    'systemctl show etcd -p ActiveState -p ActiveEnterTimestamp -p InactiveEnterTimestamp 2>/dev/null || true',
    `if [ -d ${d}/member ]; then echo has_data=1; fi`,
    `p=$(command -v etcd 2>/dev/null || true); if [ -x ${BIN_DIR}/etcd ]; then p=${BIN_DIR}/etcd; fi; b=$(dirname "\${p:-${BIN_DIR}/etcd}")`,
    `if [ "$READ_DB" = 1 ] && [ -f ${db} ]; then`,
    '  if [ -x "$b/etcdutl" ]; then t="$b/etcdutl"; elif [ -x "$b/etcdctl" ]; then t="$b/etcdctl"; else t=; fi',
    `  kb=$(du -k ${db} | cut -f1)`,
    '  if [ -z "$t" ]; then echo "db_problem=no etcdutl or etcdctl in $b to read the database"',
    `  elif [ "${dfFree('/tmp')}" -lt $((kb + 1024)) ]; then echo "db_problem=not enough room in /tmp for a copy of the database ($kb KB)"`,
    `  else f=$(mktemp /tmp/.k3s-etcd-db-XXXXXX) && cp ${db} "$f" && echo "db_status=$(ETCDCTL_API=3 "$t" snapshot status "$f" -w json 2>/dev/null | tail -n 1)"; rm -f "$f"`,
    '  fi',
    'fi',
  ].join('\n');
}

const field = (v: string) => oneLine(v.trim()).slice(0, 120);

/** The host command's answer, read as hostile input: known keys, plain values only. */
export function parseHostAnswer(out: string): SeenOnHost {
  const seen: SeenOnHost = { activeState: '', activeSince: '', inactiveSince: '', hasData: false };
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'ActiveState' && /^[a-z-]{1,20}$/.test(v.trim())) seen.activeState = v.trim();
    else if (k === 'ActiveEnterTimestamp') seen.activeSince = field(v);
    else if (k === 'InactiveEnterTimestamp') seen.inactiveSince = field(v);
    else if (k === 'has_data') seen.hasData = true;
    else if (k === 'db_problem') seen.dbProblem = field(v);
    else if (k === 'db_status') {
      const m = /"revision":\s*(\d{1,20})\b/.exec(v);
      if (m) seen.dbRevision = m[1] as string;
      else seen.dbProblem = `snapshot status did not say a revision (${field(v) || 'no output'})`;
    }
  }
  return seen;
}

async function statusOf(
  endpoint: string,
  tls: Awaited<ReturnType<typeof connectionFor>>['tls'],
  timeoutMs: number,
): Promise<{ status: SeenStatus } | { problem: string }> {
  const c = await createEndpointClient(endpoint, { tls, timeoutMs });
  try {
    const s = await c.maintenance.status({});
    const id = memberIdToHex(s.header.member_id);
    return {
      status: {
        id,
        raftIndex: String(s.raftIndex),
        raftTerm: String(s.raftTerm),
        revision: String(s.header.revision),
        leader: memberIdToHex(String(s.leader || '0')),
        isLearner: Boolean(s.isLearner),
        errors: [...(s.errors ?? [])].map(field),
      },
    };
  } catch (err) {
    return { problem: field(errorMessage(err)) };
  } finally {
    c.close();
  }
}

async function onHostOf(
  cluster: Cluster,
  host: Host,
  readDb: boolean,
  opts: DetectOptions,
): Promise<{ onHost: SeenOnHost } | { problem: string }> {
  try {
    const t = await sshOpener(cluster, host, opts.ssh)(opts.signal);
    try {
      const r = await t.exec(`READ_DB=${readDb ? 1 : 0} sh -s`, {
        sudo: true,
        stdin: hostCommand(cluster.etcd.dataDir),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (r.code !== 0) return { problem: field(r.stderr || `exit ${r.code}`) };
      return { onHost: parseHostAnswer(r.stdout) };
    } finally {
      t.close();
    }
  } catch (err) {
    return { problem: field(errorMessage(err)) };
  }
}

/** Whether any member serves a quorum read (a leader and a majority), and what each answered. */
async function quorumOf(
  endpoints: string[],
  tls: Awaited<ReturnType<typeof connectionFor>>['tls'],
  timeoutMs: number,
): Promise<{ ok: boolean; why: string }> {
  const r = await firstAnswering(endpoints, { tls, timeoutMs });
  if ('client' in r) {
    r.client.close();
    return {
      ok: true,
      why: `${r.endpoint} serves a quorum read: the cluster has a leader and a majority`,
    };
  }
  return { ok: false, why: `no member serves a quorum read (${r.problems.map(field).join('; ')})` };
}

/** Every etcd member of the inventory, seen from here and from its host (only reads). */
export async function detectCluster(cluster: Cluster, opts: DetectOptions): Promise<Detection> {
  checkDataDir(cluster);
  const conn = await connectionFor(cluster);
  const timeoutMs = opts.timeoutMs ?? 3000;
  const hosts = etcdHosts(cluster);
  const [quorum, members] = await Promise.all([
    quorumOf(
      hosts.map((h) => clientUrl(cluster, h)),
      conn.tls,
      timeoutMs,
    ),
    Promise.all(
      hosts.map(async (h): Promise<MemberSeen> => {
        const endpoint = clientUrl(cluster, h);
        const st = await statusOf(endpoint, conn.tls, timeoutMs);
        const seen: MemberSeen = {
          host: h.name,
          member: h.memberName,
          address: h.address,
          endpoint,
          ...('status' in st ? { status: st.status } : { statusProblem: st.problem }),
        };
        const oh = await onHostOf(cluster, h, !('status' in st), opts);
        if ('onHost' in oh) seen.onHost = oh.onHost;
        else seen.sshProblem = oh.problem;
        return seen;
      }),
    ),
  ]);
  return { cluster: cluster.name, at: new Date().toISOString(), members, quorum };
}

/** One line per member: what it answered and what its host says (for both front ends). */
export function detectionLines(d: Detection): string[] {
  return d.members.map((m) => {
    const etcd = m.status
      ? `answers: raft index ${m.status.raftIndex}, term ${m.status.raftTerm}, revision ${m.status.revision}, ${m.status.leader && m.status.leader !== '0' ? `leader ${m.status.leader}${m.status.leader === m.status.id ? ' (itself)' : ''}` : 'no leader'}${m.status.isLearner ? ', learner' : ''}, member ${m.status.id}`
      : `does not answer (${m.statusProblem ?? 'no answer'})`;
    const h = m.onHost;
    const host = m.sshProblem
      ? `host unreachable over SSH (${m.sshProblem})`
      : h
        ? `etcd ${h.activeState || 'unknown'}${h.activeState === 'active' ? (h.activeSince ? ` since ${h.activeSince}` : '') : h.inactiveSince ? ` since ${h.inactiveSince}` : ''}, ${h.hasData ? 'data dir present' : 'no data dir'}${h.dbRevision ? `, its database at revision ${h.dbRevision}` : ''}${h.dbProblem ? ` (database not read: ${h.dbProblem})` : ''}`
        : '';
    return `${m.host} (member ${m.member}): ${etcd}; ${host}`;
  });
}
