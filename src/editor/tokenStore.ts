/** The K3s cluster token in VS Code's SecretStorage: never in settings, the inventory or logs. */
import type { TokenStore } from '../core/k3s/token';
import { tokenKey } from '../core/k3s/token';
import type { ExtensionCtx } from './ctx';

export function secretTokenStore(ctx: ExtensionCtx, inventoryFile: string): TokenStore {
  const key = (cluster: string) => `k3s-etcd.k3s-token/${tokenKey(inventoryFile, cluster)}`;
  return {
    where: "VS Code's secret storage",
    get: async (cluster) => (await ctx.vscodeContext.secrets.get(key(cluster))) || undefined,
    set: async (cluster, token) => ctx.vscodeContext.secrets.store(key(cluster), token),
  };
}
