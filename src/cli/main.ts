/**
 * `k3s-etcd`: the command line over the same core as the extension.
 * Exit codes: 0 success, 1 failed check or invalid inventory, 2 usage error.
 * Every subcommand is in the one table (commands.ts; defined per operation, one file each:
 * src/cli/<op>.ts, named like the editor's src/editor/commands/<op>.ts), with its own `--help`.
 * In dist/cliMain.js the table is its names, summaries, usage and flags only; each command's code
 * runs or is loaded when it runs (esbuild.mjs), so `--help` and a one-shot read load nothing
 * they do not use.
 */
import { resolve } from 'node:path';
import { isatty } from 'node:tty';
import { parseArgs } from 'node:util';
import { K3sEtcdError, errorMessage } from '../core/errors';
import { INVENTORY_FILE_NAME } from '../core/inventory/types';
import {
  GLOBAL_HELP,
  GLOBAL_OPTIONS,
  terminalQuestions,
  UsageError,
  type CliIO,
  type GlobalOptions,
  type Options,
  type Subcommand,
  type Values,
} from './base';
import { COMMAND_FILES } from './commands';
import { checkFlags, checkToolFlags, CommandUsageError, didYouMean } from './usage';

export type { CliIO } from './base';

const SUBCOMMANDS: Subcommand[] = Object.values(COMMAND_FILES).flat();

function commandList(cmds: Subcommand[]): string[] {
  const width = Math.max(...cmds.map((s) => s.name.length));
  return cmds.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`);
}

function mainHelp(): string {
  return [
    'k3s-etcd: move K3s onto an external etcd with mutual TLS, and keep it healthy.',
    '',
    'Usage: k3s-etcd [global options] <command> [options]',
    '',
    'Commands:',
    ...commandList(SUBCOMMANDS),
    '',
    GLOBAL_HELP,
    '',
    'Exit codes: 0 success, 1 failed check or invalid inventory, 2 usage error.',
  ].join('\n');
}

function commandHelp(cmd: Subcommand): string {
  return [
    `${cmd.summary}.`,
    '',
    `Usage: ${cmd.usage}`,
    ...(cmd.details ? ['', cmd.details] : []),
    '',
    GLOBAL_HELP,
  ].join('\n');
}

/** The commands of a group (`snapshot`: `snapshot save`, `snapshot list`, ...), in table order. */
function groupCommands(group: string): Subcommand[] {
  return SUBCOMMANDS.filter((s) => s.name.startsWith(`${group} `));
}

function groupHelp(group: string): string {
  return [
    `Usage: k3s-etcd ${group} <command> [options]`,
    '',
    'Commands:',
    ...commandList(groupCommands(group)),
    '',
    `Run "k3s-etcd ${group} <command> --help" for a command's options.`,
    '',
    GLOBAL_HELP,
  ].join('\n');
}

/** An unknown command, with the known ones closest to it. */
function unknownCommand(positionals: string[]): UsageError {
  const [first = '', second] = positionals;
  const inGroup = groupCommands(first);
  if (inGroup.length > 0 && second !== undefined) {
    const words = inGroup.map((s) => s.name.split(' ')[1] ?? '');
    return new CommandUsageError(
      `unknown command "${second}" for k3s-etcd ${first}${didYouMean(second, words) || ` (its commands: ${words.join(', ')})`}`,
      first,
    );
  }
  const firstWords = SUBCOMMANDS.map((s) => s.name.split(' ')[0] ?? '');
  return new UsageError(`unknown command "${first}" for k3s-etcd${didYouMean(first, firstWords)}`);
}

/** Longest table entry whose words start the positionals. */
function findSubcommand(positionals: string[]): Subcommand | undefined {
  let best: Subcommand | undefined;
  for (const cmd of SUBCOMMANDS) {
    const words = cmd.name.split(' ');
    if (
      words.every((w, i) => positionals[i] === w) &&
      (!best || words.length > best.name.split(' ').length)
    )
      best = cmd;
  }
  return best;
}

export const VERSION = '0.1.0';

export async function main(argv: string[], io: CliIO): Promise<number> {
  try {
    const allOptions: Options = { ...GLOBAL_OPTIONS };
    for (const c of SUBCOMMANDS) Object.assign(allOptions, c.options);
    const loose = parseArgs({
      args: argv,
      options: allOptions,
      strict: false,
      allowPositionals: true,
    });
    const cmd = findSubcommand(loose.positionals);
    if (!cmd) {
      // A group without its command (`k3s-etcd snapshot`, `k3s-etcd snapshot --help`): the
      // group's commands, like the tool's own help.
      const [group = ''] = loose.positionals;
      const isGroup = groupCommands(group).length > 0;
      // Flags first: `--helpp`, `-v` and `--inventry x health` are flags to name, not the help.
      checkToolFlags(argv, allOptions, isGroup ? group : undefined);
      if (loose.values['version']) {
        io.out(VERSION);
        return 0;
      }
      const help = loose.values['help'] === true;
      if (isGroup && (help || loose.positionals.length === 1)) {
        (help ? io.out : io.err)(groupHelp(group));
        return help ? 0 : 2;
      }
      if (help || loose.positionals.length === 0) {
        (help ? io.out : io.err)(mainHelp());
        return help ? 0 : 2;
      }
      throw unknownCommand(loose.positionals);
    }
    checkFlags(argv, { ...GLOBAL_OPTIONS, ...cmd.options }, cmd.name);
    const parsed = parseArgs({
      args: argv,
      options: { ...GLOBAL_OPTIONS, ...cmd.options },
      strict: true,
      allowPositionals: true,
    });
    if (parsed.values['help']) {
      io.out(commandHelp(cmd));
      return 0;
    }
    const extra = parsed.positionals.slice(cmd.name.split(' ').length);
    const maxArgs = cmd.maxArgs ?? 0;
    if (extra.length > maxArgs) {
      throw new CommandUsageError(
        `unexpected argument "${extra[maxArgs]}" for "${cmd.name}"`,
        cmd.name,
      );
    }
    const values = parsed.values as Values;
    const global: GlobalOptions = {
      inventory: resolve(
        io.cwd,
        typeof values['inventory'] === 'string' ? values['inventory'] : INVENTORY_FILE_NAME,
      ),
      cluster: typeof values['cluster'] === 'string' ? values['cluster'] : undefined,
      json: values['json'] === true,
      yes: values['yes'] === true,
    };
    return await cmd.run({ global, values, args: extra, io });
  } catch (err) {
    if (
      err instanceof UsageError ||
      (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))
    ) {
      const help =
        err instanceof CommandUsageError ? `k3s-etcd ${err.command} --help` : 'k3s-etcd --help';
      io.err(`k3s-etcd: ${err.message}\nRun "${help}" for usage.`);
      return 2;
    }
    if (
      err instanceof K3sEtcdError &&
      (err.code === 'inventory-invalid' || err.code === 'inventory-missing')
    ) {
      io.err(`k3s-etcd: ${err.message}`);
      return 1;
    }
    io.err(`k3s-etcd: ${errorMessage(err)}`);
    return 1;
  }
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of input) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
}

function processIO(): CliIO {
  const questions = terminalQuestions(
    () => process.stdin,
    () => process.stderr,
  );
  return {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    // isatty, not process.stdin.isTTY: that opens standard input, which a one-shot read never uses.
    interactive: isatty(0) && isatty(2),
    cwd: process.cwd(),
    ...questions,
    // On a terminal: one hidden line (never echoed); piped: everything up to the end.
    readSecretInput: (what) =>
      process.stdin.isTTY ? questions.askSecret(`${what}: `) : readAll(process.stdin),
  };
}

/** The process's own run: dist/cli.js (bin.ts) calls it, and this file run directly (tsx). */
export function runAsBin(): void {
  // etcd3 sets a TLS server name from IP endpoints; Node's DEP0123 warning about it is noise here.
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if ((w as NodeJS.ErrnoException).code !== 'DEP0123')
      process.stderr.write(`${w.name}: ${w.message}\n`);
  });
  void main(process.argv.slice(2), processIO()).then((code) => {
    process.exitCode = code;
  });
}

// Run when executed directly (not when imported by tests; in dist/, dist/cli.js runs it).
if (typeof module !== 'undefined' && require.main === module) runAsBin();
