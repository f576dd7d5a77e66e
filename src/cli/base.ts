/**
 * The light part of the CLI's context: the I/O, the options every command takes, the table
 * entry's shape and the usage error. The command table and its dispatch (dist/cliMain.js) load
 * only this; the other commands' bundle (dist/cliCommands.js) uses dist/cliMain.js's, so one
 * `UsageError` class is thrown and caught (esbuild.mjs).
 */
import type * as ReadlinePromises from 'node:readline/promises';
import type * as Stream from 'node:stream';
import type { Readable, Writable } from 'node:stream';

/**
 * Loaded when a question is asked: the table and the one-shot reads never load readline.
 * `require`, not import(): the command line's bundle runs in a vm.Script (codeCache.ts).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const readline = () => require('node:readline/promises') as typeof ReadlinePromises;
import type { ParseArgsConfig } from 'node:util';
import { INVENTORY_FILE_NAME } from '../core/inventory/types';

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
  stdin: Readable | (() => Readable),
  stdout: Writable | (() => Writable),
): Pick<CliIO, 'ask' | 'askSecret'> {
  // Functions: the streams are only opened when a question is asked (process.stdin and
  // process.stderr cost start-up time a command that asks nothing should not pay).
  const inputOf = () => (typeof stdin === 'function' ? stdin() : stdin);
  const outputOf = () => (typeof stdout === 'function' ? stdout() : stdout);
  let queue: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(f: () => Promise<T>): Promise<T> => {
    const next = queue.then(f, f);
    queue = next.catch(() => undefined);
    return next;
  };
  return {
    ask: (question) =>
      oneAtATime(async () => {
        const rl = readline().createInterface({ input: inputOf(), output: outputOf() });
        try {
          return await rl.question(question);
        } finally {
          rl.close();
        }
      }),
    askSecret: (question) =>
      oneAtATime(async () => {
        const output = outputOf();
        output.write(question);
        // Echo nothing of what is typed; the newline is written after the answer.
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const { Writable: Muted } = require('node:stream') as typeof Stream;
        const muted = new Muted({ write: (_c, _e, cb) => cb() });
        const rl = readline().createInterface({ input: inputOf(), output: muted, terminal: true });
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
