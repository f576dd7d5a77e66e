/** The edge-host harness's public types (see ./index.ts for what the harness does). */
export interface EdgeHostSpec {
  name: string;
  /**
   * network 'shared': the host's own loopback address (127.0.1.N), required: its sshd listens
   * there, and later its etcd. network 'bridge': an address inside the bridge's /24 (only
   * knowable beforehand with `createBridgeNetwork()` + `EdgeHostsOptions.bridge`), or omitted:
   * host i (0-based) then gets `bridge.address(11 + i)`.
   */
  address?: string;
  /**
   * Files or folders of this machine the host sees read-only (systemd-nspawn --bind-ro), e.g.
   * this machine's node and VS Code server for `startVsCodeOnHost`; absolute paths, no ':'.
   */
  bindReadOnly?: { source: string; target: string }[];
}

/** A private IPv4 network for edge hosts: a Linux bridge in this machine's network namespace. */
export interface BridgeNetwork {
  /** The bridge's interface name here: k3seb<4 hex>. */
  readonly name: string;
  /** The /24 of this network, e.g. '10.213.57.0/24'. */
  readonly subnet: string;
  /** The bridge's own address (this machine's side), 10.213.X.1; no host may take it. */
  readonly gateway: string;
  /** 10.213.X.n, for n in 2..254. */
  address(n: number): string;
  /** Whether `address` may be given to a host on this network (inside the /24, not .0/.1/.255). */
  contains(address: string): boolean;
  /** Deletes the bridge and any link still enslaved to it. Idempotent. Stop its hosts first. */
  remove(): Promise<void>;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Default 60 s; on expiry the command's process group is SIGKILLed and code is 124. */
  timeoutMs?: number;
  /** Written to the command's stdin (otherwise stdin is empty). */
  input?: string;
}

export interface EdgeHost {
  name: string;
  /** The host's current address (`changeAddress()` updates it). */
  readonly address: string;
  /** How the host is networked (see `EdgeHostsOptions.network`). */
  readonly network: 'shared' | 'bridge';
  /** network 'bridge': the bridge the host is on; undefined for 'shared'. */
  readonly bridge: BridgeNetwork | undefined;
  /** network 'bridge': the host side of the host's veth pair, in this machine's namespace (vb-...). */
  readonly veth: string | undefined;
  /** nspawn machine name, unique per test run: k3se-<rand>-<name>. */
  machine: string;
  /** The host's root directory on this machine (the overlay's merged dir, or the copy). */
  root: string;
  /** pid (in this machine's pid namespace) of the container's systemd, for nsenter. */
  leaderPid: number;
  /** pid of the systemd-nspawn process (also its process-group id). */
  nspawnPid: number;
  /** How `root` was made. */
  rootMode: 'overlay' | 'copy';
  /** systemd's state when the host came up: 'running' or 'degraded'. */
  systemState: string;
  /** Units that had failed when the host came up (empty when `systemState` is 'running'). */
  failedUnits: string[];
  /**
   * Milliseconds: rootMs making the root (overlay mount or copy); bootMs from spawning nspawn to
   * sshd's banner (including setupMs, creating the users inside the booted host).
   */
  timings: { rootMs: number; bootMs: number; setupMs: number };
  /** systemd-nspawn's own output, including the container's console (--console=passive). */
  logFile: string;
  /** The temp dir holding root/upper/work/log; removed by `stop()`. */
  dir: string;
  /**
   * How the last `stop()` ended the host: 'poweroff' (systemd shut down within the deadline and
   * nspawn exited by itself) or 'kill' (SIGKILL of its cgroup); undefined while it runs.
   */
  readonly stoppedBy: 'poweroff' | 'kill' | undefined;
  /**
   * Runs a shell command inside the host as root (nsenter -t leaderPid -a sh -c ...), resolves
   * with code/stdout/stderr; never throws on a non-zero exit.
   */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /**
   * network 'bridge' only: moves the host to `newAddress` (same /24): removes the old address from
   * host0 and adds the new one inside the host, forgets this machine's ARP entry for the old one,
   * rewrites the host's /etc/hosts line, updates `address`, and resolves once sshd answers on the
   * new address. Services stay as they are (an etcd bound to the old address keeps that socket,
   * which nobody can reach any more). Rejects in shared mode.
   */
  changeAddress(newAddress: string): Promise<void>;
  /** Clean shutdown (systemctl poweroff, deadline, then SIGKILL), unmount, remove dir. Idempotent. */
  stop(): Promise<void>;
}

export interface EdgeHostsOptions {
  hosts: EdgeHostSpec[];
  /** OpenSSH public key lines put in /root/.ssh/authorized_keys and in the non-root users' ones. */
  authorizedKeys: string[];
  /**
   * A non-root user created on each host: name, password (set with chpasswd) and sudo that
   * REQUIRES the password (no NOPASSWD; timestamp_timeout=0, so every sudo asks again).
   * Default { name: 'edge', password: 'edge-sudo-pw' }.
   */
  sudoUser?: { name: string; password: string };
  /**
   * A second non-root user with NOPASSWD sudo (key login only; its password is locked unless
   * given). Default { name: 'edgenp' }; `false` leaves it out.
   */
  nopasswdUser?: { name: string; password?: string } | false;
  /**
   * 'auto' (default): overlayfs, falling back to a copy if the mount fails; 'copy' forces
   * `cp -a --reflink=auto`. The environment variable K3S_ETCD_EDGE_ROOT=copy does the same.
   */
  rootMode?: 'auto' | 'overlay' | 'copy';
  /** Deadline for every host to be up, default 60 000 ms. */
  bootTimeoutMs?: number;
  /**
   * 'shared' (default): hosts share this machine's network, each on its own 127.0.1.N.
   * 'bridge': every host in its own network namespace on a private bridge (see the file header).
   */
  network?: 'shared' | 'bridge';
  /**
   * network 'bridge': put the hosts on this network (from `createBridgeNetwork()`; the caller
   * removes it after stopping the hosts). Default: a new one, deleted when the last of these
   * hosts stops.
   */
  bridge?: BridgeNetwork;
}

export const DEFAULT_SUDO_USER: Readonly<{ name: string; password: string }> = {
  name: 'edge',
  password: 'edge-sudo-pw',
};

export const DEFAULT_NOPASSWD_USER: Readonly<{ name: string; password?: string }> = {
  name: 'edgenp',
};
