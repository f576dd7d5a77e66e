/**
 * `npm run lab -- --remote edge-N`: the lab's VS Code runs ON that edge host instead of on this
 * machine, as a Remote-SSH server would: the extension host, its terminals and everything they
 * start live there, as the host's non-root user `edge` (whose sudo asks for edge-sudo-pw). The
 * host is booted with this machine's node, the VS Code server and the lab's VSIX bound into it
 * read-only (nothing is installed in it); its workspace is `/home/edge/lab`, a copy of the lab
 * workspace (the inventory, the lab key, known_hosts, etcd-bin), and the lab key and
 * known_hosts are also the user's own in ~/.ssh, as on a real edge host.
 */
import { cp, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SUDO_USER, type EdgeHost } from '../harness/edgeHosts';
import { remoteVsCodeBinds, startVsCodeOnHost, type RemoteVsCode } from '../harness/remoteVsCode';

export const REMOTE_USER = DEFAULT_SUDO_USER.name;
export const REMOTE_WORKSPACE = `/home/${REMOTE_USER}/lab`;
const VSIX_ON_HOST = '/opt/k3s-etcd/k3s-etcd.vsix';

/** What the remote host is booted with: node, VS Code and the VSIX, read-only. */
export async function remoteBinds(vsix: string): Promise<{ source: string; target: string }[]> {
  return [...(await remoteVsCodeBinds()), { source: vsix, target: VSIX_ON_HOST }];
}

/** Copies the lab workspace to the host's user and starts VS Code there with the VSIX. */
export async function startRemoteVsCode(
  host: EdgeHost,
  opts: { workspace: string; key: string; knownHosts: string; port: number },
): Promise<RemoteVsCode> {
  const home = join(host.root, 'home', REMOTE_USER);
  await cp(opts.workspace, join(home, 'lab'), { recursive: true });
  await mkdir(join(home, '.ssh'), { recursive: true });
  await cp(opts.key, join(home, '.ssh', 'id_ed25519'));
  await cp(opts.knownHosts, join(home, '.ssh', 'known_hosts'));
  const own = await host.exec(
    `chown -R ${REMOTE_USER}:${REMOTE_USER} /home/${REMOTE_USER} && chmod 700 /home/${REMOTE_USER}/.ssh && chmod 600 /home/${REMOTE_USER}/.ssh/id_ed25519`,
  );
  if (own.code !== 0)
    throw new Error(`preparing ${REMOTE_WORKSPACE} on ${host.name}: ${own.stderr}`);
  return startVsCodeOnHost(host, {
    user: REMOTE_USER,
    port: opts.port,
    folder: REMOTE_WORKSPACE,
    vsix: VSIX_ON_HOST,
  });
}
