/**
 * `k3s-etcd`: the command line over the same core as the extension.
 * Exit codes: 0 success, 1 failed check or invalid inventory, 2 usage error.
 * Every subcommand lives in the one table below, with its own `--help`.
 */
import { access, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { K3sEtcdError, errorMessage } from '../core/errors';
import { listMembers } from '../core/etcd/members';
import { renderColumns, renderTable } from '../core/format/table';
import { formatProblem, loadInventoryFile, summarize } from '../core/inventory/parse';
import { STARTER_INVENTORY } from '../core/inventory/starter';
import { INVENTORY_FILE_NAME, type Cluster, type Inventory } from '../core/inventory/types';
import { clientEndpoints, clientUrl, peerUrl, sshTarget } from '../core/inventory/urls';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Whether a person can answer questions (stdin and stderr are terminals). */
  interactive: boolean;
  ask(question: string): Promise<string>;
  cwd: string;
}

interface GlobalOptions {
  inventory: string;
  cluster: string | undefined;
  json: boolean;
  yes: boolean;
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Values = Record<string, string | boolean | undefined>;

interface RunContext {
  global: GlobalOptions;
  values: Values;
  args: string[];
  io: CliIO;
}

interface Subcommand {
  /** Words after `k3s-etcd`, e.g. `inventory validate`. */
  name: string;
  summary: string;
  usage: string;
  details?: string;
  options?: Options;
  run(ctx: RunContext): Promise<number>;
}

class UsageError extends Error {}

const GLOBAL_OPTIONS: Options = {
  inventory: { type: 'string' },
  cluster: { type: 'string' },
  json: { type: 'boolean', default: false },
  yes: { type: 'boolean', short: 'y', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', default: false },
};

const GLOBAL_HELP = `Global options:
  --inventory PATH   inventory file (default ./${INVENTORY_FILE_NAME})
  --cluster NAME     cluster to act on (default: the only cluster)
  --json             machine-readable output
  --yes, -y          answer yes to confirmations (without it, asks on a terminal and refuses without one)
  --help, -h         help for a command`;

// ---------------------------------------------------------------------------------------------
// Helpers shared by subcommands

async function loadValid(ctx: RunContext): Promise<Inventory> {
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

async function confirm(ctx: RunContext, question: string): Promise<boolean> {
  if (ctx.global.yes) return true;
  if (!ctx.io.interactive) {
    throw new UsageError(`${question} Refusing without --yes: there is no terminal to ask.`);
  }
  const answer = (await ctx.io.ask(`${question} [y/N] `)).trim().toLowerCase();
  return answer === 'y' || answer === 'yes';
}

function json(ctx: RunContext, value: unknown): void {
  ctx.io.out(JSON.stringify(value, null, 2));
}

// ---------------------------------------------------------------------------------------------
// The table of subcommands

const SUBCOMMANDS: Subcommand[] = [
  {
    name: 'inventory validate',
    summary: 'Check the inventory; exit 1 when it has errors',
    usage: 'k3s-etcd inventory validate [--inventory PATH] [--json]',
    async run(ctx) {
      const result = await loadInventoryFile(ctx.global.inventory);
      const label = (file: string) => relative(ctx.io.cwd, file) || file;
      const errors = result.problems.filter((p) => p.severity === 'error');
      if (ctx.global.json) {
        json(ctx, {
          file: result.file,
          valid: result.status === 'ok',
          summary: result.status === 'ok' ? summarize(result.inventory) : undefined,
          problems: result.problems.map((p) => ({ ...p, text: formatProblem(p, label(p.file)) })),
        });
      } else {
        for (const p of result.problems) ctx.io.err(formatProblem(p, label(p.file)));
        if (result.status === 'ok')
          ctx.io.out(`${label(result.file)}: valid (${summarize(result.inventory)})`);
        else ctx.io.err(`${label(result.file)}: ${errors.length} error(s)`);
      }
      return result.status === 'ok' ? 0 : 1;
    },
  },
  {
    name: 'inventory show',
    summary: 'Print clusters, hosts, roles and the derived etcd URLs',
    usage: 'k3s-etcd inventory show [--cluster NAME] [--json]',
    async run(ctx) {
      const inv = await loadValid(ctx);
      const clusters =
        ctx.global.cluster !== undefined ? [selectCluster(inv, ctx.global.cluster)] : inv.clusters;
      if (ctx.global.json) {
        json(ctx, {
          file: inv.file,
          clusters: clusters.map((c) => ({
            ...c,
            endpoints: clientEndpoints(c),
            hosts: c.hosts.map((h) => ({
              ...h,
              sshTarget: sshTarget(h),
              ...(h.roles.includes('etcd')
                ? { clientUrl: clientUrl(c, h), peerUrl: peerUrl(c, h) }
                : {}),
            })),
          })),
        });
        return 0;
      }
      const blocks = clusters.map((c) => {
        const head = `${c.name}  ${c.datastore}  etcd ${c.etcd.version}  pki ${relative(ctx.io.cwd, c.pki.dir) || c.pki.dir} (${c.pki.algorithm})`;
        const rows = c.hosts.map((h) => [
          h.name,
          sshTarget(h),
          h.roles.join(','),
          h.roles.includes('etcd') ? h.memberName : '-',
          h.roles.includes('etcd') ? clientUrl(c, h) : '-',
          h.roles.includes('etcd') ? peerUrl(c, h) : '-',
        ]);
        return `${head}\n${renderColumns(['HOST', 'SSH', 'ROLES', 'MEMBER', 'CLIENT URL', 'PEER URL'], rows, '  ')}`;
      });
      ctx.io.out(blocks.join('\n\n'));
      return 0;
    },
  },
  {
    name: 'inventory init',
    summary: 'Write a commented starter inventory',
    usage: 'k3s-etcd inventory init [--inventory PATH] [--yes]',
    details: 'Refuses to replace an existing file unless confirmed (asks on a terminal, or --yes).',
    async run(ctx) {
      const file = ctx.global.inventory;
      const exists = await access(file).then(
        () => true,
        () => false,
      );
      if (
        exists &&
        !(await confirm(ctx, `${file} exists. Replace it with the starter inventory?`))
      ) {
        ctx.io.err('Left the existing inventory unchanged.');
        return 1;
      }
      await writeFile(file, STARTER_INVENTORY);
      ctx.io.out(
        `Wrote ${relative(ctx.io.cwd, file) || file}. Edit the hosts, then run: k3s-etcd inventory validate`,
      );
      return 0;
    },
  },
  {
    name: 'members',
    summary: 'List etcd members (the columns of `etcdctl member list -w table`)',
    usage:
      'k3s-etcd members [--cluster NAME] [--endpoints URL,...] [--cacert F --cert F --key F] [--json]',
    details:
      "Endpoints default to every etcd member of the cluster. TLS files default to the cluster's\n" +
      'pki dir (ca.pem, client/admin.pem, client/admin-key.pem) when they exist.',
    options: {
      endpoints: { type: 'string' },
      cacert: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      timeout: { type: 'string' },
    },
    async run(ctx) {
      const v = ctx.values;
      let endpoints =
        typeof v['endpoints'] === 'string' ? v['endpoints'].split(',').filter(Boolean) : [];
      let tls: { caFile: string; certFile: string; keyFile: string } | undefined;
      const given = [v['cacert'], v['cert'], v['key']].filter((x) => typeof x === 'string').length;
      if (given > 0 && given < 3) throw new UsageError('--cacert, --cert and --key go together');
      if (given === 3) {
        tls = {
          caFile: String(v['cacert']),
          certFile: String(v['cert']),
          keyFile: String(v['key']),
        };
      }
      if (endpoints.length === 0) {
        const cluster = selectCluster(await loadValid(ctx), ctx.global.cluster);
        endpoints = clientEndpoints(cluster);
        if (!tls) {
          const candidate = {
            caFile: join(cluster.pki.dir, 'ca.pem'),
            certFile: join(cluster.pki.dir, 'client', 'admin.pem'),
            keyFile: join(cluster.pki.dir, 'client', 'admin-key.pem'),
          };
          const present = await Promise.all(
            Object.values(candidate).map((f) =>
              access(f).then(
                () => true,
                () => false,
              ),
            ),
          );
          if (present.every(Boolean)) tls = candidate;
        }
      }
      const timeoutMs = v['timeout'] !== undefined ? Number(v['timeout']) : undefined;
      if (timeoutMs !== undefined && !(timeoutMs > 0))
        throw new UsageError('--timeout is a number of milliseconds');
      const members = await listMembers(endpoints, {
        ...(tls ? { tls } : {}),
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      if (ctx.global.json) {
        json(ctx, members);
      } else {
        const rows = members.map((m) => [
          m.id,
          m.name ? 'started' : 'unstarted',
          m.name,
          m.peerUrls.join(','),
          m.clientUrls.join(','),
          String(m.isLearner),
        ]);
        ctx.io.out(
          renderTable(['ID', 'STATUS', 'NAME', 'PEER ADDRS', 'CLIENT ADDRS', 'IS LEARNER'], rows),
        );
      }
      return 0;
    },
  },
];

function mainHelp(): string {
  const width = Math.max(...SUBCOMMANDS.map((s) => s.name.length));
  return [
    'k3s-etcd: move K3s onto an external etcd with mutual TLS, and keep it healthy.',
    '',
    'Usage: k3s-etcd [global options] <command> [options]',
    '',
    'Commands:',
    ...SUBCOMMANDS.map((s) => `  ${s.name.padEnd(width)}  ${s.summary}`),
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
      if (loose.values['version']) {
        io.out(VERSION);
        return 0;
      }
      if (loose.values['help'] || loose.positionals.length === 0) {
        (loose.positionals.length === 0 && !loose.values['help'] ? io.err : io.out)(mainHelp());
        return loose.values['help'] ? 0 : 2;
      }
      throw new UsageError(`unknown command "${loose.positionals.join(' ')}"`);
    }
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
    if (extra.length > 0)
      throw new UsageError(`unexpected argument "${extra[0]}" for "${cmd.name}"`);
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
      io.err(`k3s-etcd: ${err.message}\nRun "k3s-etcd --help" for usage.`);
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

function processIO(): CliIO {
  return {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    cwd: process.cwd(),
    async ask(question) {
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

// Run when executed as the bin (not when imported by tests).
if (require.main === module) {
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
