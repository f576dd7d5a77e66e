/**
 * Edge-host harness: boots REAL Debian bookworm "edge hosts" (systemd as PID 1, sshd, sudo) on
 * this machine with systemd-nspawn, for system tests and the `npm run lab` script.
 *
 * - `ensureRootfs()` builds one minbase root file system with debootstrap (once, cached under
 *   ~/.cache/k3s-etcd/rootfs-bookworm, built in a temp dir and renamed into place under a flock).
 * - `startEdgeHosts()` gives every host its own root (an overlayfs over the cached root, or a
 *   `cp -a` copy where overlayfs cannot be mounted), fresh SSH host keys, an sshd that listens on
 *   the host's own loopback address 127.0.1.N only, root's authorized_keys and two non-root users
 *   (sudo with password, sudo without), boots them in parallel and resolves when systemd says
 *   running/degraded and sshd answers with its banner on address:22.
 * - network 'shared' (default): hosts share this machine's network namespace (no private
 *   network): every loopback address 127.0.0.0/8 is local on Linux, so the etcd of host 127.0.1.N
 *   binds 127.0.1.N:2379/2380 itself. Addresses outside 127.0.0.0/8 are refused.
 * - network 'bridge' (opt-in): a Linux bridge `k3seb<4 hex>` in this machine's namespace with
 *   10.213.X.1/24 (X picked per run, a /24 nothing here uses), and every host in its own network
 *   namespace (`systemd-nspawn --network-bridge`) with interface host0 carrying the one address
 *   the harness gives it (10.213.X.N/24; lo up; no default route, no NAT, no forwarding, IPv6 off
 *   on our links). sshd listens on 0.0.0.0, so `changeAddress()` can really move a host: its old
 *   address then answers nothing. The bridge (and any veth left on it) is deleted with the last
 *   host, by the exit hooks, or by a later run once its owner process is gone.
 * - Nothing is left behind: `stop()` powers the host off cleanly (deadline, then SIGKILL of its
 *   cgroup), unmounts its root and removes its dir; a process-level exit/SIGINT/SIGTERM hook
 *   (run before ../processes' own hook) kills every container still running and lazily unmounts
 *   its overlay, and ../processes removes the temp dirs. Each nspawn runs in its own cgroup
 *   (k3s-etcd-edge/<pid>-<machine>, see `hierarchies()`), which is what gets killed; hosts that a
 *   SIGKILLed test process could not clean up are swept by the next `startEdgeHosts()`.
 * - Runs as root (mount, nspawn, cgroups). The Debian mirror is the one apt uses here
 *   (override: K3S_ETCD_DEBIAN_MIRROR); K3S_ETCD_EDGE_ROOT=copy forces copies instead of overlays.
 *   Neither mode touches net.ipv4.ip_forward or any firewall rule.
 *
 * Parts: ./rootfs (root file systems), ./processes (/proc, cgroups, sweeps), ./network (loopback
 * checks, the bridge), ./setup (a host's identity and users), ./host (one host's life), ./exec
 * (commands here, locks, exit clean-ups), ./types (the public types).
 */
import { randomBytes } from 'node:crypto';
import { ensureRootfs } from './rootfs';
import {
  isLoopback,
  portFree,
  Bridge,
  liveBridges,
  makeBridge,
  sweepStaleBridgesLocked,
  withNetLock,
} from './network';
import { sweepOrphans } from './processes';
import { startHost, usedAddresses } from './host';
import {
  DEFAULT_NOPASSWD_USER,
  DEFAULT_SUDO_USER,
  type EdgeHost,
  type EdgeHostsOptions,
} from './types';

export * from './types';
export { shq } from './exec';
export { debianMirror, ensureRootfs, rootfsCacheDir } from './rootfs';
export { createBridgeNetwork } from './network';
export { hostKeyLine } from './host';

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

const USER_RE = /^[a-z_][a-z0-9_-]{0,30}$/;

/**
 * Boots all hosts in parallel; resolves when every one has systemd running (or degraded: see
 * `failedUnits`) and its sshd answering on address:22. On any failure every host is stopped
 * and the error names the host with its last journal lines.
 */
export async function startEdgeHosts(opts: EdgeHostsOptions): Promise<EdgeHost[]> {
  const sudoUser = opts.sudoUser ?? DEFAULT_SUDO_USER;
  const nopasswdUser =
    opts.nopasswdUser === false ? undefined : (opts.nopasswdUser ?? DEFAULT_NOPASSWD_USER);
  const rootMode =
    opts.rootMode ?? (process.env['K3S_ETCD_EDGE_ROOT'] === 'copy' ? 'copy' : 'auto');
  if (opts.hosts.length === 0) throw new Error('no hosts');
  if (opts.authorizedKeys.length === 0) throw new Error('authorizedKeys is empty');
  for (const k of opts.authorizedKeys) {
    if (/[\r\n]/.test(k.trim())) throw new Error(`an authorized key spans lines: ${k}`);
  }
  for (const u of [sudoUser, nopasswdUser]) {
    if (u && (!USER_RE.test(u.name) || u.name === 'root'))
      throw new Error(`bad user name ${u.name}`);
    if (u?.password !== undefined && /[\n:]/.test(u.password)) {
      throw new Error(`the password of ${u.name} may not contain ':' or a newline`);
    }
  }
  if (nopasswdUser?.name === sudoUser.name) throw new Error('the two users need different names');
  const network = opts.network ?? 'shared';
  if (network !== 'shared' && network !== 'bridge') throw new Error(`unknown network ${network}`);
  if (opts.bridge !== undefined) {
    if (network !== 'bridge') throw new Error("a bridge is only for network 'bridge'");
    if (!(opts.bridge instanceof Bridge) || !liveBridges.has(opts.bridge.name)) {
      throw new Error('opts.bridge must be a live network from createBridgeNetwork()');
    }
  }
  const given = opts.bridge instanceof Bridge ? opts.bridge : undefined;
  const seen = new Set<string>();
  for (const [i, h] of opts.hosts.entries()) {
    if (!NAME_RE.test(h.name)) throw new Error(`bad host name "${h.name}" (a-z, 0-9, -)`);
    if (network === 'shared') {
      if (h.address === undefined || !isLoopback(h.address)) {
        throw new Error(`${h.name}: address ${h.address} is not in 127.0.0.0/8 (loopback only)`);
      }
    } else if (h.address !== undefined && !given?.contains(h.address)) {
      throw new Error(
        given
          ? `${h.name}: address ${h.address} is not a host address in ${given.subnet}`
          : `${h.name}: an address on a bridge the harness makes itself is not known yet: leave ` +
              'it out (host i gets .11+i), or pass a network from createBridgeNetwork()',
      );
    }
    const address = h.address ?? `.${11 + i}`;
    if (seen.has(h.name) || seen.has(address)) throw new Error(`duplicate ${h.name}/${address}`);
    if (usedAddresses.has(address)) throw new Error(`${address} is already used by a running host`);
    seen.add(h.name);
    seen.add(address);
  }

  const rootfs = await ensureRootfs();
  sweepOrphans();
  await withNetLock(async () => sweepStaleBridgesLocked());
  if (network === 'shared') {
    // The host's sshd takes address:22, its etcd address:2379/2380: all must be free here.
    for (const h of opts.hosts) {
      for (const port of [22, 2379, 2380]) {
        if (!(await portFree(h.address ?? '', port))) {
          throw new Error(
            `${h.address}:${port} is already in use on this machine (a host left from an earlier run?)`,
          );
        }
      }
    }
  }
  // In its own network namespace a host's ports are its own: nothing to check here.
  const bridge = network === 'bridge' ? (given ?? (await makeBridge(true))) : undefined;
  const addresses = opts.hosts.map((h, i) => h.address ?? bridge?.address(11 + i) ?? '');
  for (const [i, a] of addresses.entries()) {
    if (usedAddresses.has(a) || addresses.indexOf(a) !== i) {
      if (bridge?.owned) await bridge.remove();
      throw new Error(`${a} is used twice, or already used by a running host`);
    }
  }
  for (const a of addresses) usedAddresses.add(a);

  const runId = randomBytes(3).toString('hex');
  const machines = opts.hosts.map((h) => `k3se-${runId}-${h.name}`);
  for (const m of machines) bridge?.hosts.add(m);
  const deadline = Date.now() + (opts.bootTimeoutMs ?? 60_000);
  const results = await Promise.allSettled(
    opts.hosts.map((spec, i) =>
      startHost({
        spec,
        address: addresses[i] ?? '',
        bridge,
        rootfs,
        runId,
        authorizedKeys: opts.authorizedKeys,
        sudoUser,
        nopasswdUser,
        rootMode,
        deadline,
      }),
    ),
  );
  const hosts = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (errors.length > 0) {
    await stopEdgeHosts(hosts);
    for (const a of addresses) usedAddresses.delete(a);
    if (bridge) {
      for (const m of machines) bridge.hosts.delete(m);
      if (bridge.owned) await bridge.remove();
    }
    const msg = errors.map((e) => (e instanceof Error ? e.message : String(e))).join('\n\n');
    throw new Error(`${errors.length} of ${opts.hosts.length} edge hosts failed to start:\n${msg}`);
  }
  return hosts;
}

export async function stopEdgeHosts(hosts: EdgeHost[]): Promise<void> {
  await Promise.all(hosts.map((h) => h.stop()));
}
