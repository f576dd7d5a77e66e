/**
 * Which inventory host this window's extension host runs on, whatever the remote kind
 * (Remote-SSH, a tunnel, a VS Code server started on the host, or no remote at all): decided
 * by `core/thisHost` from this machine's identity and each host's, read over SSH once and
 * remembered in the extension's global state.
 */
import type { Cluster, Host } from '../core/inventory/types';
import type { ThisHostDecision } from '../core/thisHost/identity';
import { thisHostAmong, type IdentityCache } from '../core/thisHost/read';
import type { ExtensionCtx } from './ctx';
import { quietSshContext } from './sshPrompts';

function identityCache(ctx: ExtensionCtx): IdentityCache {
  const state = ctx.vscodeContext.globalState;
  return { get: (key) => state.get(key), set: (key, value) => state.update(key, value) };
}

/** The decision for `hosts` of `cluster` (default: all of them), every host's reason with it. */
export async function thisHostOf(
  ctx: ExtensionCtx,
  cluster: Cluster,
  hosts: readonly Host[] = cluster.hosts,
  signal?: AbortSignal,
): Promise<ThisHostDecision> {
  // Nothing is asked for this read: a host that needs a password or an unknown key is unread
  // (so reached over SSH, where the operation asks as usual); an unreachable host costs at
  // most 8 s before the operation starts.
  const ssh = await quietSshContext(ctx);
  const d = await thisHostAmong(cluster, hosts, ssh, identityCache(ctx), signal);
  for (const [host, why] of Object.entries(d.reasons))
    ctx.log.info(`this window and ${host}: ${why}`);
  return d;
}
