/** An SSH session to a host of the inventory: its target resolved, the person's prompts attached. */
import type { Cluster, Host } from '../inventory/types';
import { resolveTarget, type SshEnvironment } from './target';
import { connectSsh } from './transport';
import type { SshSession } from './session';
import type { SshPrompts } from './types';

/** What every SSH connection of a front end shares: the environment and how to ask the person. */
export interface SshContext {
  env: SshEnvironment;
  prompts: SshPrompts;
  timeoutMs?: number;
  agentSocket?: string;
}

/** Opens an SSH transport to a host of the inventory. */
export function sshOpener(cluster: Cluster, host: Host, ssh: SshContext) {
  return async (signal?: AbortSignal): Promise<SshSession> =>
    connectSsh(resolveTarget(cluster, host, ssh.env), {
      prompts: ssh.prompts,
      ...(signal ? { signal } : {}),
      ...(ssh.timeoutMs ? { timeoutMs: ssh.timeoutMs } : {}),
      ...(ssh.agentSocket !== undefined ? { agentSocket: ssh.agentSocket } : {}),
    });
}
