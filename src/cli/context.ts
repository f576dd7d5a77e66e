/** What every subcommand gets: parsed global options, its own option values, the I/O. */
import { relative } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { K3sEtcdError } from '../core/errors';
import { formatProblem, loadInventoryFile } from '../core/inventory/parse';
import { INVENTORY_FILE_NAME, type Cluster, type Inventory } from '../core/inventory/types';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Whether a person can answer questions (stdin and stderr are terminals). */
  interactive: boolean;
  ask(question: string): Promise<string>;
  /** Like ask, without echoing what is typed (passphrases). */
  askSecret(question: string): Promise<string>;
  cwd: string;
}

export interface GlobalOptions {
  inventory: string;
  cluster: string | undefined;
  json: boolean;
  yes: boolean;
}

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | undefined>;

export interface RunContext {
  global: GlobalOptions;
  values: Values;
  args: string[];
  io: CliIO;
}

export interface Subcommand {
  /** Words after `k3s-etcd`, e.g. `inventory validate`. */
  name: string;
  summary: string;
  usage: string;
  details?: string;
  options?: Options;
  /** How many positional arguments it takes after its name (default 0). */
  maxArgs?: number;
  run(ctx: RunContext): Promise<number>;
}

export class UsageError extends Error {}

export const GLOBAL_OPTIONS: Options = {
  inventory: { type: 'string' },
  cluster: { type: 'string' },
  json: { type: 'boolean', default: false },
  yes: { type: 'boolean', short: 'y', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', default: false },
};

export const GLOBAL_HELP = `Global options:
  --inventory PATH   inventory file (default ./${INVENTORY_FILE_NAME})
  --cluster NAME     cluster to act on (default: the only cluster)
  --json             machine-readable output
  --yes, -y          answer yes to confirmations (without it, asks on a terminal and refuses without one)
  --help, -h         help for a command`;

export async function loadValid(ctx: RunContext): Promise<Inventory> {
  const result = await loadInventoryFile(ctx.global.inventory);
  if (result.status !== 'ok') {
    for (const p of result.problems)
      ctx.io.err(formatProblem(p, relative(ctx.io.cwd, p.file) || p.file));
    throw new K3sEtcdError(
      result.status === 'missing' ? 'inventory-missing' : 'inventory-invalid',
      result.status === 'missing' ? 'no inventory' : 'the inventory is invalid',
    );
  }
  for (const p of result.problems)
    ctx.io.err(formatProblem(p, relative(ctx.io.cwd, p.file) || p.file));
  return result.inventory;
}

/** `--cluster NAME`, or the only cluster; otherwise a usage error listing them. */
export function selectCluster(inv: Inventory, name: string | undefined): Cluster {
  const names = inv.clusters.map((c) => c.name).join(', ');
  if (name !== undefined) {
    const found = inv.clusters.find((c) => c.name === name);
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

export function json(ctx: RunContext, value: unknown): void {
  ctx.io.out(JSON.stringify(value, null, 2));
}
