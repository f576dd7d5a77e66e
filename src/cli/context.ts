/** What every subcommand gets: parsed global options, its own option values, the I/O. */
import { readFile } from 'node:fs/promises';
import { basename, dirname, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { Writable, type Readable } from 'node:stream';
import type { ParseArgsConfig } from 'node:util';
import { K3sEtcdError } from '../core/errors';
import { formatProblem, loadInventoryFile } from '../core/inventory/parse';
import { clusterByName } from '../core/inventory/select';
import { INVENTORY_FILE_NAME, type Cluster, type Inventory } from '../core/inventory/types';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Whether a person can answer questions (stdin and stderr are terminals). */
  interactive: boolean;
  ask(question: string): Promise<string>;
  /** Like ask, without echoing what is typed (passphrases). */
  askSecret(question: string): Promise<string>;
  /**
   * A secret given as `-` (`--token-file -`): all of standard input when it is piped, one hidden
   * line when it is a terminal. Absent when there is no standard input to read.
   */
  readSecretInput?(what: string): Promise<string>;
  cwd: string;
}

/**
 * Questions on a terminal, one at a time: each waits until the one before it is answered, so one
 * typed line answers exactly one question (hosts connecting in parallel ask at the same moment;
 * two readers on one input would each take the same line).
 */
export function terminalQuestions(
  input: Readable,
  output: Writable,
): Pick<CliIO, 'ask' | 'askSecret'> {
  let queue: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(f: () => Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    ask: (question) =>
      oneAtATime(async () => {
        const rl = createInterface({ input, output });
        try {
          return await rl.question(question);
        } finally {
          rl.close();
        }
      }),
    askSecret: (question) =>
      oneAtATime(async () => {
        output.write(question);
        // Echo nothing of what is typed; the newline is written after the answer.
        const muted = new Writable({ write: (_c, _e, cb) => cb() });
        const rl = createInterface({ input, output: muted, terminal: true });
        try {
          return await rl.question('');
        } finally {
          rl.close();
          output.write('\n');
        }
      }),
  };
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
