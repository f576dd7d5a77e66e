/**
 * The cluster's K3s token: one per cluster, the same on every server. Never in the inventory.
 * The editor keeps it in VS Code's SecretStorage; the CLI in a 0600 file under
 * ~/.config/k3s-etcd/tokens (the way kubeconfig files are kept). When none is stored, the first
 * server that already has one lends it; otherwise a new one is generated.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../files/atomicWrite';

export interface TokenStore {
  get(cluster: string): Promise<string | undefined>;
  set(cluster: string, token: string): Promise<void>;
  /** Where it is kept, for messages. */
  readonly where: string;
}

/** 32 random bytes, hex: what K3s accepts as a server token. */
export function generateToken(): string {
  return randomBytes(32).toString('hex');
}

/** A key unique per inventory file and cluster. */
export function tokenKey(inventoryFile: string, cluster: string): string {
  return `${createHash('sha256').update(inventoryFile).digest('hex').slice(0, 12)}-${cluster}`;
}

/** The CLI's store: one 0600 file per inventory and cluster, in a 0700 folder. */
export function fileTokenStore(
  inventoryFile: string,
  dir = join(process.env['XDG_CONFIG_HOME'] || join(homedir(), '.config'), 'k3s-etcd', 'tokens'),
): TokenStore {
  const file = (cluster: string) => join(dir, `${tokenKey(inventoryFile, cluster)}.token`);
  return {
    where: dir,
    async get(cluster) {
      const t = await readFile(file(cluster), 'utf8').catch(() => undefined);
      return t?.trim() || undefined;
    },
    async set(cluster, token) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(file(cluster), `${token}\n`, { mode: 0o600 });
    },
  };
}
