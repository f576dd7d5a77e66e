/**
 * How the repair reaches the member's host: over SSH, or, when this window runs on that host
 * (`HereHost`), on this machine in its own terminal (root through the sudo that asks there).
 * A member on its own loopback is then reached directly instead of over an SSH tunnel.
 */
import { K3sEtcdError, errorMessage } from '../errors';
import type { Cluster, Host } from '../inventory/types';
import type { HostTransport } from '../plan/runner';
import { sshOpener, type SshContext } from '../ssh/hostSession';
import { tunnel } from '../ssh/tunnel';
import type { HereHost } from '../thisHost/terminal';

export interface MemberHostAccess {
  /** Commands on the host (root with `sudo: true`). */
  t: HostTransport;
  /** True when the host is this window's own: nothing goes over SSH to it. */
  local: boolean;
  /**
   * An etcd endpoint for `address:port` as the host sees it: directly here, through an SSH
   * tunnel otherwise (TLS then checks 127.0.0.1, which every member certificate carries).
   */
  loopback(address: string, port: number): Promise<{ endpoint: string; close(): void }>;
  close(): void;
}

/** Opens `host` (at its address in `cluster`); an SSH failure is worded with `hint`. */
export async function openMemberHost(
  cluster: Cluster,
  host: Host,
  opts: { ssh: SshContext; here?: HereHost; signal?: AbortSignal; hint?: string },
): Promise<MemberHostAccess> {
  if (opts.here?.host === host.name) {
    const t = await opts.here.open(opts.signal);
    return {
      t,
      local: true,
      loopback: async (address, port) => ({
        endpoint: `https://${address.includes(':') ? `[${address}]` : address}:${port}`,
        close: () => undefined,
      }),
      close: () => t.close(),
    };
  }
  let session;
  try {
    session = await sshOpener(cluster, host, opts.ssh)(opts.signal);
  } catch (err) {
    throw new K3sEtcdError(
      (err as K3sEtcdError).code ?? 'ssh-unreachable',
      `Cannot reach ${host.name} at ${host.address} over SSH: ${errorMessage(err)}${opts.hint ?? ''}`,
      { cause: err },
    );
  }
  const s = session;
  return {
    t: s,
    local: false,
    loopback: async (address, port) => {
      const tun = await tunnel(s, address, port);
      return { endpoint: `https://127.0.0.1:${tun.port}`, close: () => tun.close() };
    },
    close: () => s.close(),
  };
}
