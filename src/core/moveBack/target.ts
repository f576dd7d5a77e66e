/**
 * Where the editor keeps the new state.db: `migrations/<UTC time>/state.db` in the workspace, in
 * a folder only its owner can enter, and the migrations folder kept out of git (a state.db holds
 * every Secret of the cluster).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { backupStamp } from '../format/stamp';
import { MIGRATIONS_DIR } from '../migrate/migrate';
import { ignoreSecretsFolder } from '../pki/gitignore';

export async function workspaceStateTarget(
  workspaceDir: string,
  now = new Date(),
): Promise<string> {
  await mkdir(join(workspaceDir, MIGRATIONS_DIR), { recursive: true, mode: 0o700 });
  const dir = join(workspaceDir, MIGRATIONS_DIR, backupStamp(now));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await ignoreSecretsFolder(workspaceDir, MIGRATIONS_DIR);
  return join(dir, 'state.db');
}
