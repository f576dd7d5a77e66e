/**
 * What a K3s server says about itself, read over SSH in one command: its version, its node's
 * Ready state, and the datastore endpoint its config.yaml names (none: SQLite or embedded etcd).
 * Shown on the K3s server nodes of the tree after a refresh asked for by the person (SSH is not
 * polled on a timer). Pure: the tree imports it at activation; the SSH reading is in ops.ts.
 */
import { K3S_BIN, K3S_CONFIG } from './server';

export interface K3sServerState {
  installed: boolean;
  version?: string;
  /** The node's STATUS column (Ready, NotReady...), when the API answered. */
  nodeStatus?: string;
  datastoreEndpoint?: string;
  /** ISO time of the reading. */
  at: string;
  /** Why it could not be read (SSH failed...). */
  error?: string;
}

export function k3sStateCommand(): string {
  return [
    `if [ -x ${K3S_BIN} ] || command -v k3s >/dev/null 2>&1; then echo installed=yes; else echo installed=no; fi`,
    `echo "version=$({ ${K3S_BIN} --version || k3s --version; } 2>/dev/null | head -n 1 | awk '{print $3}')"`,
    `echo "node=$(${K3S_BIN} kubectl get node "$(hostname)" --no-headers 2>/dev/null | awk '{print $2}')"`,
    `echo "endpoint=$(sed -n 's/^datastore-endpoint: *//p' ${K3S_CONFIG} 2>/dev/null | tr -d '"' | head -n 1)"`,
  ].join('\n');
}

export function parseK3sState(out: string, at = new Date()): K3sServerState {
  const kv = new Map(
    out
      .split('\n')
      .map((l) => /^([a-z]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1] as string, (m[2] as string).trim()]),
  );
  const v = (k: string) => kv.get(k) || undefined;
  const version = v('version');
  const nodeStatus = v('node');
  const datastoreEndpoint = v('endpoint');
  return {
    installed: kv.get('installed') === 'yes',
    ...(version ? { version } : {}),
    ...(nodeStatus ? { nodeStatus } : {}),
    ...(datastoreEndpoint ? { datastoreEndpoint } : {}),
    at: at.toISOString(),
  };
}

/** One line for the tree: "v1.31.4+k3s1 · Ready · etcd ×3", "not installed", "SQLite"... */
export function describeK3sState(s: K3sServerState): string {
  if (s.error) return 'state unknown (SSH failed)';
  if (!s.installed) return 'not installed';
  const store = s.datastoreEndpoint
    ? `etcd ×${s.datastoreEndpoint.split(',').filter(Boolean).length}`
    : 'SQLite or embedded etcd';
  return [s.version ?? 'version unknown', s.nodeStatus ?? 'API not answering', store].join(' · ');
}
