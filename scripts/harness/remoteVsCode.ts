/**
 * The VS Code server running ON an edge host, as Remote-SSH runs it there: the same server
 * (the one inside the code-server package, scripts/setup-vscode.sh), started inside the nspawn
 * host as its non-root user by the host's own systemd (`systemd-run --uid`), so the extension
 * host, its terminals and everything they start live on that host: its file system, its
 * machine id and host name, its users and sudo. Nothing is installed in the host: this
 * machine's node, the VS Code server and (for tests) the extension's folder are bound into it
 * read-only when it boots (`remoteVsCodeBinds`, EdgeHostSpec.bindReadOnly).
 *
 * The server listens on the host's own address with a connection token (random, 0600 in the
 * user's home), so only whoever holds the printed URL can open it. `stop()` stops the unit.
 */
import { randomBytes } from 'node:crypto';
import { withToken } from '../lab/connectionToken.mjs';
import type { EdgeHost } from './edgeHosts';
import { httpStatus } from './net';
import { sleep } from './processes';
import { ensureVsCode, QUIET_WORKBENCH } from './vscode';

export const NODE_ON_HOST = '/opt/k3s-etcd/node';
export const VSCODE_ON_HOST = '/opt/k3s-etcd/vscode';
export const EXTENSION_ON_HOST = '/opt/k3s-etcd/extension';

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** What an edge host needs bound read-only to run the VS Code server (and `extension`). */
export async function remoteVsCodeBinds(
  extension?: string,
): Promise<{ source: string; target: string }[]> {
  return [
    { source: process.execPath, target: NODE_ON_HOST },
    { source: await ensureVsCode(), target: VSCODE_ON_HOST },
    ...(extension ? [{ source: extension, target: EXTENSION_ON_HOST }] : []),
  ];
}

export interface RemoteVsCode {
  /** `ADDRESS:PORT`, the remote authority of every `vscode-remote://` URI. */
  readonly authority: string;
  readonly connectionToken: string;
  /** The systemd unit inside the host. */
  readonly unit: string;
  /** `vscode-remote://ADDRESS:PORT/abs/path` (a path inside the host). */
  remoteUri(absPath: string): string;
  /** The workbench URL with the token, a folder of the host and a payload. */
  workbenchUrl(opts: { folder?: string; payload?: Array<[string, string]> }): string;
  /** The unit's journal and the extension host logs inside the host (tails). */
  diagnostics(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

export interface RemoteVsCodeOptions {
  /** The host's non-root user the server runs as (its home holds the server's data). */
  user: string;
  port: number;
  /** User settings (User/settings.json of the server's user-data dir). */
  settings?: Record<string, unknown>;
  /** A folder of the host opened by default. */
  folder?: string;
  /** A VSIX inside the host, installed for the user before the server starts. */
  vsix?: string;
  readyTimeoutMs?: number;
}

/** Starts the VS Code server on `host` (booted with `remoteVsCodeBinds()`), ready to open. */
export async function startVsCodeOnHost(
  host: EdgeHost,
  opts: RemoteVsCodeOptions,
): Promise<RemoteVsCode> {
  if (!/^[a-z_][a-z0-9_-]*$/.test(opts.user)) throw new Error(`bad user name ${opts.user}`);
  const home = `/home/${opts.user}`;
  const base = `${home}/.k3s-etcd-vscode`;
  const token = randomBytes(32).toString('base64url');
  const unit = `k3s-etcd-vscode-${opts.port}`;
  const settings = {
    'security.workspace.trust.enabled': false,
    ...QUIET_WORKBENCH,
    ...opts.settings,
  };
  const server = `${NODE_ON_HOST} ${VSCODE_ON_HOST}/out/server-main.js`;
  const dirs = `--server-data-dir ${base}/server --user-data-dir ${base}/user --extensions-dir ${base}/extensions`;
  const asUser = (cmd: string) => `runuser -u ${opts.user} -- sh -c ${shq(cmd)}`;
  const prepare = [
    'set -e',
    `test -x ${NODE_ON_HOST} && test -f ${VSCODE_ON_HOST}/out/server-main.js`,
    asUser(
      `umask 077 && mkdir -p ${base}/server ${base}/user/User ${base}/extensions && printf %s ${shq(token)} > ${base}/token && printf %s ${shq(JSON.stringify(settings))} > ${base}/user/User/settings.json`,
    ),
    ...(opts.vsix
      ? [
          asUser(
            `${server} --install-extension ${shq(opts.vsix)} --force --accept-server-license-terms ${dirs}`,
          ),
        ]
      : []),
    [
      `systemd-run --unit=${unit} --uid=${opts.user} --gid=${opts.user}`,
      `-p WorkingDirectory=${home} --setenv=HOME=${home} --setenv=USER=${opts.user}`,
      `--setenv=SHELL=/bin/bash --setenv=EXTENSIONS_GALLERY={}`,
      `${server} --host ${host.address} --port ${opts.port}`,
      `--connection-token-file ${base}/token --accept-server-license-terms ${dirs} --disable-telemetry`,
      ...(opts.folder ? [`--default-folder ${shq(opts.folder)}`] : []),
    ].join(' '),
  ].join('\n');
  const r = await host.exec(prepare, { timeoutMs: 120_000 });
  if (r.code !== 0)
    throw new Error(`starting VS Code on ${host.name} failed (exit ${r.code}): ${r.stderr}`);

  const authority = `${host.address}:${opts.port}`;
  const baseUrl = `http://${authority}`;
  const diagnostics = async (lines = 60) => {
    const j = await host.exec(
      `journalctl -u ${unit} -n ${lines} --no-pager; for f in $(find ${base}/user/logs -name '*exthost*.log' 2>/dev/null); do echo "== $f"; tail -n ${lines} "$f"; done`,
    );
    return j.stdout + j.stderr;
  };
  const stop = async () => {
    await host.exec(
      `systemctl stop ${unit} 2>/dev/null; systemctl reset-failed ${unit} 2>/dev/null; true`,
    );
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);
  while ((await httpStatus(withToken(`${baseUrl}/`, token), 2_000)) !== 302) {
    const active = await host.exec(`systemctl is-active ${unit}`);
    if (Date.now() > deadline || !/^(active|activating)/.test(active.stdout.trim())) {
      const why = await diagnostics();
      await stop();
      throw new Error(`VS Code on ${host.name} (${authority}) did not become ready:\n${why}`);
    }
    await sleep(200);
  }
  return {
    authority,
    connectionToken: token,
    unit,
    remoteUri: (absPath) => `vscode-remote://${authority}${absPath}`,
    workbenchUrl: ({ folder, payload }) => {
      const q: string[] = [];
      if (folder !== undefined) q.push(`folder=${encodeURIComponent(folder)}`);
      if (payload !== undefined) q.push(`payload=${encodeURIComponent(JSON.stringify(payload))}`);
      return withToken(`${baseUrl}/${q.length > 0 ? `?${q.join('&')}` : ''}`, token);
    },
    diagnostics,
    stop,
  };
}
