/**
 * What systemd says of etcd on an edge host, for proofs that members restart one at a time:
 * its invocation, when it last went down and up (on the monotonic clock the hosts share with
 * this machine), how many times it was started, and a check that the restarts never overlapped.
 */
import type { EdgeHost } from './edgeHosts/types';

export interface EtcdUnitState {
  invocation: string;
  pid: string;
  /** Monotonic µs: the old process began to stop, the new one was ready. */
  downAt: number;
  upAt: number;
}

export async function etcdUnitState(h: EdgeHost): Promise<EtcdUnitState> {
  const r = await h.exec(
    'systemctl show etcd -p InvocationID -p ExecMainPID -p ActiveExitTimestampMonotonic -p ActiveEnterTimestampMonotonic',
  );
  const v = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  return {
    invocation: v['InvocationID'] ?? '',
    pid: v['ExecMainPID'] ?? '',
    downAt: Number(v['ActiveExitTimestampMonotonic']),
    upAt: Number(v['ActiveEnterTimestampMonotonic']),
  };
}

/** How many times systemd has started etcd on `h` (its journal's "Started etcd" lines). */
export async function etcdStarts(h: EdgeHost): Promise<number> {
  const r = await h.exec(
    "journalctl -u etcd.service -o cat --no-pager | grep -c '^Started etcd' || true",
  );
  return Number(r.stdout.trim());
}

/**
 * The hosts sorted by when etcd last went down, with whether each went down only after the one
 * before was up again (one at a time); `[]` problems when so.
 */
export function overlaps(states: ReadonlyArray<EtcdUnitState & { name: string }>): {
  order: string[];
  problems: string[];
} {
  const byDown = [...states].sort((a, b) => a.downAt - b.downAt);
  const problems: string[] = [];
  for (let i = 1; i < byDown.length; i++) {
    if (!(byDown[i]!.downAt > byDown[i - 1]!.upAt))
      problems.push(`${byDown[i]!.name} went down before ${byDown[i - 1]!.name} was up again`);
  }
  return { order: byDown.map((b) => b.name), problems };
}
