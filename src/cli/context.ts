/**
 * What every subcommand gets: parsed global options, its own option values, the I/O (base.ts,
 * light enough for the command table), and the helpers commands share (the inventory, questions).
 */
import { readFile } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { K3sEtcdError } from '../core/errors';
import { formatProblem, loadInventoryFile } from '../core/inventory/parse';
import { clusterByName } from '../core/inventory/select';
import type { Cluster, Inventory } from '../core/inventory/types';
import { UsageError, type RunContext } from './base';

export * from './base';

/**
 * A missing inventory in the CLI's words: where it looked and the CLI's ways out (the shared
 * loader's problem points at a line of a file that does not exist and names the editor's command).
 */
export function missingInventoryMessage(file: string): string {
  return `no ${basename(file)} in ${dirname(file)} (use --inventory PATH or \`k3s-etcd inventory init\`)`;
}

export async function loadValid(ctx: RunContext): Promise<Inventory> {
  const result = await loadInventoryFile(ctx.global.inventory);
  if (result.status === 'missing')
    throw new K3sEtcdError('inventory-missing', missingInventoryMessage(result.file));
  if (result.status !== 'ok') {
    for (const p of result.problems)
      ctx.io.err(formatProblem(p, relative(ctx.io.cwd, p.file) || p.file));
    throw new K3sEtcdError('inventory-invalid', 'the inventory is invalid');
  }
  for (const p of result.problems)
    ctx.io.err(formatProblem(p, relative(ctx.io.cwd, p.file) || p.file));
  return result.inventory;
}

/** `--cluster NAME`, or the only cluster; otherwise a usage error listing them. */
export function selectCluster(inv: Inventory, name: string | undefined): Cluster {
  const names = inv.clusters.map((c) => c.name).join(', ');
  if (name !== undefined) {
    const found = clusterByName(inv, name);
    if (!found) throw new UsageError(`no cluster "${name}" in the inventory (clusters: ${names})`);
    return found;
  }
  const [only, ...rest] = inv.clusters;
  if (!only || rest.length > 0)
    throw new UsageError(
      `the inventory has several clusters: pass --cluster NAME (one of: ${names})`,
    );
  return only;
}

export async function confirm(ctx: RunContext, question: string): Promise<boolean> {
  if (ctx.global.yes) return true;
  if (!ctx.io.interactive) {
    throw new UsageError(`${question} Refusing without --yes: there is no terminal to ask.`);
  }
  const answer = (await ctx.io.ask(`${question} [y/N] `)).trim().toLowerCase();
  return answer === 'y' || answer === 'yes';
}

/**
 * The K3s token from `--token-file PATH`, `--token-file -` (standard input, so it is never on a
 * command line) or `--token TOKEN` (still works, with a warning: any local user can read a
 * process's arguments); undefined when none is given.
 */
export async function tokenFromOptions(ctx: RunContext): Promise<string | undefined> {
  const given = ctx.values['token'];
  const file = ctx.values['token-file'];
  if (typeof given === 'string') {
    ctx.io.err(
      'k3s-etcd: warning: --token puts the cluster token on the command line, where other users of this machine can read it (ps, /proc/<pid>/cmdline). Use --token-file FILE, or --token-file - to read it from standard input.',
    );
    return given;
  }
  if (typeof file !== 'string') return undefined;
  if (file !== '-') return (await readFile(resolve(ctx.io.cwd, file), 'utf8')).trim();
  if (!ctx.io.readSecretInput)
    throw new UsageError('--token-file -: there is no standard input to read the token from');
  const token = (await ctx.io.readSecretInput('K3s token')).trim();
  if (!token)
    throw new UsageError(
      '--token-file -: standard input held no token (pipe it in, e.g. `k3s-etcd ... --token-file - < token`)',
    );
  return token;
}

export function json(ctx: RunContext, value: unknown): void {
  ctx.io.out(JSON.stringify(value, null, 2));
}
