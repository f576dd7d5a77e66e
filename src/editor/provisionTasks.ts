/**
 * Provisioning as VS Code tasks (`type: k3s-etcd`, with operation, cluster and host): over SSH
 * through a `CustomExecution` whose pseudoterminal streams each host's lines with step markers
 * and ends with the exit code; or, when VS Code is connected to the host itself with Remote-SSH,
 * as a `ShellExecution` of the same script in the host's own terminal (sudo asks there).
 * `restore-etcd` restores a snapshot onto every member the same way; started by "Restore etcd
 * from Snapshot…" after its modal it runs at once (the CLI's `--yes`), otherwise it shows the
 * dry run and asks first. In Restricted Mode no task is offered, and one run anyway (from
 * tasks.json) says why and ends with exit 1 before anything connects.
 */
import * as vscode from 'vscode';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { errorMessage } from '../core/errors';
import { planRestore, type RestorePlan } from '../core/restore/plan';
import { restoreSnapshot } from '../core/restore/run';
import type { Cluster, Host } from '../core/inventory/types';
import {
  etcdHosts,
  initialClusterOf,
  selectHosts,
  selectK3sServers,
  k3sServers,
} from '../core/inventory/select';
import { checkFacts, factsCommand, parseFacts } from '../core/etcd/memberHost';
import { planMember, provisionEtcd } from '../core/provision/provision';
import { asRootIfPossible, isThisHost, terminalCommand } from '../core/plan/local';
import { parseMarker, renderScript } from '../core/plan/render';
import { summarizeRun, type HostRun, type RunHooks } from '../core/plan/runner';
import { installK3s } from '../core/k3s/ops';
import { secretTokenStore } from './tokenStore';
import { clusterNamed } from './commands/cluster';
import type { ExtensionCtx } from './ctx';
import { withCancellableProgress } from './progress';
import { editorSshContext } from './sshPrompts';

export const TASK_TYPE = 'k3s-etcd';

export type TaskOperationName = 'provision-etcd' | 'install-k3s' | 'restore-etcd';

const OPERATIONS: readonly TaskOperationName[] = ['provision-etcd', 'install-k3s', 'restore-etcd'];

export interface K3sEtcdTaskDefinition extends vscode.TaskDefinition {
  type: typeof TASK_TYPE;
  operation: TaskOperationName;
  cluster: string;
  host?: string;
  /** restore-etcd: the snapshot (.db), absolute or relative to the inventory's folder. */
  snapshot?: string;
}

/** What a task runs: a dry run, then (after the modal) the real run, with hooks. */
interface TaskOperation {
  what: string;
  apply: string;
  detail(changes: number, hosts: string[]): string;
  /** Confirmed before the task started (a modal naming what happens): runs without asking. */
  confirmed?: boolean;
  run(dryRun: boolean, hooks: RunHooks): Promise<{ runs: HostRun[]; ok: boolean; lines: string[] }>;
}

/**
 * Restores the person confirmed in the editor's modal, by cluster and snapshot: the task takes
 * the plan it showed (same kept-dir names) and runs without asking again. Taken once: a re-run
 * of the task asks.
 */
const confirmedRestores = new Map<string, RestorePlan>();
const restoreKey = (cluster: string, file: string) => `${cluster}\0${file}`;

/** The modal's detail for a restore: what stops, what is lost, where the old data stays. */
export function restoreConfirmDetail(plan: RestorePlan): string {
  const hosts = plan.members.map((m) => m.host).join(', ');
  return [
    `Every member (${hosts}) is stopped first, the snapshot is restored on each with a new cluster token, then etcd starts again on all of them. Writes made after revision ${plan.snapshot.revision} are lost.`,
    `The old data dirs are kept at ${plan.members[0]?.keptAs ?? ''} on each host (never deleted).`,
    ...(plan.k3sServers.length > 0
      ? [
          `K3s servers ${plan.k3sServers.join(', ')} lose their datastore meanwhile: restart them afterwards.`,
        ]
      : []),
    `Snapshot: ${plan.file} (SHA-256 checked against its record).`,
  ].join('\n\n');
}

function snapshotPath(ctx: ExtensionCtx, def: K3sEtcdTaskDefinition): string {
  if (!def.snapshot)
    throw new Error(
      'The restore-etcd task needs "snapshot": the .db file under backups/<cluster>/ (see "Show Snapshots").',
    );
  return resolve(dirname(ctx.inventory.file() ?? '.'), def.snapshot);
}

async function restoreOperation(
  ctx: ExtensionCtx,
  cluster: Cluster,
  def: K3sEtcdTaskDefinition,
): Promise<TaskOperation> {
  const file = snapshotPath(ctx, def);
  const key = restoreKey(cluster.name, file);
  const confirmed = confirmedRestores.get(key);
  confirmedRestores.delete(key);
  const plan = confirmed ?? (await planRestore(cluster, file));
  const ssh = await editorSshContext(ctx);
  return {
    what: `the restore of etcd cluster ${cluster.name} from the snapshot of ${plan.snapshot.createdAt} (revision ${plan.snapshot.revision})`,
    apply: 'Restore',
    detail: () => restoreConfirmDetail(plan),
    confirmed: confirmed !== undefined,
    run: async (dryRun, hooks) => {
      const r = await restoreSnapshot(cluster, file, {
        ...hooks,
        ssh,
        plan,
        dryRun,
        onPhase: (_p, n, title) => hooks.onLine?.(cluster.name, `== phase ${n}/4: ${title}`),
      });
      return {
        runs: r.phases.flatMap((p) =>
          p.runs.map((x) => ({ ...x, host: `${x.host} (${p.phase})` })),
        ),
        ok: dryRun
          ? r.phases.every((p) =>
              p.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled'),
            )
          : r.healthy === true,
        lines: dryRun
          ? []
          : [
              ...r.kept.map((k) => `${k.host}: old data kept at ${k.path}`),
              `health: ${r.healthSummary ?? ''}`,
              `restored: revision now served ${r.revision ?? 'unknown'}, the snapshot's ${plan.snapshot.revision}`,
              ...(plan.k3sServers.length > 0
                ? [
                    `next: restart K3s on ${plan.k3sServers.join(', ')} (one server at a time) so it reads the restored state`,
                  ]
                : []),
            ],
      };
    },
  };
}

async function operationFor(ctx: ExtensionCtx, def: K3sEtcdTaskDefinition): Promise<TaskOperation> {
  ctx.trust.require('Running a K3s etcd task');
  const cluster = clusterNamed(ctx, def.cluster);
  if (def.operation === 'restore-etcd') return restoreOperation(ctx, cluster, def);
  const ssh = await editorSshContext(ctx);
  const only = def.host ? [def.host] : undefined;
  if (def.operation === 'install-k3s') {
    const hosts = selectK3sServers(cluster, only).map((h) => h.name);
    const file = (ctx.inventory.current() as { file: string }).file;
    const base = {
      ssh,
      hosts,
      tokens: secretTokenStore(ctx, file),
      workspaceDir: dirname(file),
    };
    return {
      what: `K3s on ${hosts.join(', ')} (cluster ${cluster.name}, external etcd)`,
      apply: 'Apply',
      detail: (n, on) =>
        `${n} step(s) would change on ${on.join(', ')}, one server at a time. config.yaml (0600) is backed up before being replaced; K3s restarts where its config changed.`,
      run: async (dryRun, hooks) => {
        const r = await installK3s(cluster, { ...base, ...hooks, dryRun });
        if (!dryRun) void ctx.k3s.refresh(cluster, ssh);
        return {
          runs: r.runs,
          ok: r.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled'),
          lines: r.kubeconfig ? [`kubeconfig: ${r.kubeconfig}`] : [],
        };
      },
    };
  }
  const hosts = selectHosts(cluster, only).map((h) => h.name);
  return {
    what: `etcd on ${hosts.join(', ')} (cluster ${cluster.name})`,
    apply: 'Apply',
    detail: (n, on) =>
      `${n} step(s) would change on ${on.join(', ')}. Existing units and configuration are backed up before being replaced; data directories are never deleted. Use "Preview Provisioning Plan" to read every step.`,
    run: async (dryRun, hooks) => {
      const r = await provisionEtcd(cluster, { ...hooks, dryRun, ssh, hosts });
      return {
        runs: r.runs,
        ok:
          r.runs.every((x) => x.status !== 'failed' && x.status !== 'cancelled') &&
          r.healthy !== false,
        lines: r.healthSummary ? [`health: ${r.healthSummary}`] : [],
      };
    },
  };
}

const ESC = '\x1b[';
const colour = (code: number, s: string) => `${ESC}${code}m${s}${ESC}0m`;
const STATUS_COLOUR: Record<string, number> = {
  changed: 33,
  'would-change': 33,
  unchanged: 32,
  ok: 32,
  failed: 31,
};

/** One output line for the terminal: host prefix, markers coloured, CRLF. */
export function terminalLine(host: string, line: string): string {
  const m = parseMarker(line);
  let text = line;
  if (m?.status) text = colour(STATUS_COLOUR[m.status] ?? 0, line);
  else if (m?.title) text = colour(1, line);
  return `${colour(36, `[${host}]`)} ${text}\r\n`;
}

function localIdentity() {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .map((i) => i?.address)
    .filter((a): a is string => Boolean(a));
  return { hostname: hostname(), addresses };
}

/** The host this window is connected to with Remote-SSH, when it is `host` and we run there. */
function runsOnHost(ctx: ExtensionCtx, host: Host): boolean {
  return (
    vscode.env.remoteName === 'ssh-remote' &&
    ctx.vscodeContext.extension.extensionKind === vscode.ExtensionKind.Workspace &&
    isThisHost(host, localIdentity())
  );
}

class ProvisionTerminal implements vscode.Pseudoterminal {
  private readonly write = new vscode.EventEmitter<string>();
  private readonly done = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.write.event;
  readonly onDidClose = this.done.event;
  private readonly abort = new AbortController();

  constructor(
    private readonly ctx: ExtensionCtx,
    private readonly def: K3sEtcdTaskDefinition,
  ) {}

  open(): void {
    void this.run().then(
      (code) => this.done.fire(code),
      (err: unknown) => {
        this.write.fire(colour(31, `\r\n${errorMessage(err).replace(/\r?\n/g, '\r\n')}\r\n`));
        this.ctx.log.error(`provision ${this.def.cluster}: ${errorMessage(err)}`);
        this.done.fire(1);
      },
    );
  }

  close(): void {
    this.abort.abort();
  }

  private line(host: string, text: string): void {
    this.write.fire(terminalLine(host, text));
  }

  private async run(): Promise<number> {
    const op = await operationFor(this.ctx, this.def);
    if (op.confirmed) return this.apply(op);
    this.write.fire(colour(1, `Checking ${op.what}…\r\n`));
    const preview = await op.run(true, {
      signal: this.abort.signal,
      onLine: (host, l) => {
        if (!parseMarker(l)) this.line(host, l);
      },
    });
    for (const r of preview.runs) this.write.fire(`${summaryLine(r)}\r\n`);
    if (preview.runs.some((r) => r.status === 'failed' || r.status === 'cancelled')) return 1;
    const pending = preview.runs.filter((r) => r.status === 'would-change');
    if (pending.length === 0) {
      this.write.fire(colour(32, 'Everything is in place: nothing to change.\r\n'));
      return 0;
    }
    const changes = pending.reduce(
      (a, r) => a + r.steps.filter((s) => s.status === 'would-change').length,
      0,
    );
    const choice = await vscode.window.showInformationMessage(
      `${op.what}: apply?`,
      {
        modal: true,
        detail: op.detail(
          changes,
          pending.map((r) => r.host),
        ),
      },
      op.apply,
    );
    if (choice !== op.apply) {
      this.write.fire('Not applied: nothing changed.\r\n');
      return 1;
    }
    return this.apply(op);
  }

  /** The real run, its summary and exit code. */
  private async apply(op: TaskOperation): Promise<number> {
    if (op.confirmed) this.write.fire(colour(1, `Running ${op.what} (confirmed)…\r\n`));
    const result = await withCancellableProgress(`Running ${op.what}`, (report, signal) => {
      signal.addEventListener('abort', () => this.abort.abort(), { once: true });
      return op.run(false, {
        signal: this.abort.signal,
        onLine: (host, l) => this.line(host, l),
        onStep: (host, s) => {
          if (s.status === 'pending') report(`${host}: ${s.n}/${s.title}`);
        },
      });
    });
    this.write.fire('\r\n');
    for (const r of result.runs) this.write.fire(`${summaryLine(r)}\r\n`);
    for (const l of result.lines) this.write.fire(`${l}\r\n`);
    void this.ctx.health.refreshAll();
    this.write.fire(
      colour(
        result.ok ? 32 : 31,
        `${result.ok ? 'Done' : 'Failed'}: exit ${result.ok ? 0 : 1}\r\n`,
      ),
    );
    return result.ok ? 0 : 1;
  }
}

function summaryLine(r: HostRun): string {
  const c =
    r.status === 'failed' || r.status === 'cancelled' ? 31 : r.status === 'unchanged' ? 32 : 33;
  return colour(c, summarizeRun(r));
}

/** Builds the script for this host and a terminal task running it with sudo (Remote-SSH). */
async function localShellExecution(
  ctx: ExtensionCtx,
  cluster: Cluster,
  host: Host,
): Promise<vscode.ShellExecution> {
  const factsOut = await new Promise<string>((resolve, reject) =>
    // As root where possible (the data dir is 0700): directly, or through password-less sudo.
    execFile('sh', ['-c', asRootIfPossible(factsCommand(cluster.etcd.dataDir))], (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const facts = parseFacts(factsOut);
  checkFacts(host, facts);
  const plan = await planMember(cluster, host, facts, {
    cluster: initialClusterOf(cluster),
    state: 'new',
  });
  const stage = await mkdtemp(join(tmpdir(), 'k3s-etcd-stage-'));
  await chmod(stage, 0o700);
  for (const p of plan.payloads) {
    const data = p.content ?? (p.localPath ? await readFile(p.localPath) : Buffer.alloc(0));
    await writeFile(join(stage, p.name), data, { mode: 0o600 });
  }
  const script = join(stage, 'provision-etcd.sh');
  await writeFile(script, renderScript(plan), { mode: 0o600 });
  ctx.log.info(`provisioning ${host.name} in its own terminal with ${script}`);
  // POSIX sh whatever the user's shell is (fish, nushell...).
  return new vscode.ShellExecution(terminalCommand(script, stage), {
    executable: '/bin/sh',
    shellArgs: ['-c'],
  });
}

export function provisionTask(
  ctx: ExtensionCtx,
  def: K3sEtcdTaskDefinition,
  scope: vscode.WorkspaceFolder | vscode.TaskScope = vscode.TaskScope.Workspace,
): vscode.Task {
  const verb =
    def.operation === 'install-k3s'
      ? 'install K3s'
      : def.operation === 'restore-etcd'
        ? `restore etcd from ${basename(def.snapshot ?? 'a snapshot')}`
        : 'provision etcd';
  const name = def.host ? `${verb} on ${def.host} (${def.cluster})` : `${verb} (${def.cluster})`;
  const task = new vscode.Task(
    def,
    scope,
    name,
    'k3s-etcd',
    new vscode.CustomExecution(async (resolved) => {
      const d = resolved as K3sEtcdTaskDefinition;
      return new ProvisionTerminal(ctx, d);
    }),
  );
  task.presentationOptions = {
    reveal: vscode.TaskRevealKind.Always,
    panel: vscode.TaskPanelKind.Dedicated,
    clear: true,
  };
  return task;
}

/** For Remote-SSH: the same operation in the host's own terminal. */
export async function hostTerminalTask(
  ctx: ExtensionCtx,
  def: K3sEtcdTaskDefinition,
): Promise<vscode.Task | undefined> {
  if (!def.host || def.operation !== 'provision-etcd') return undefined;
  const cluster = clusterNamed(ctx, def.cluster);
  const host = cluster.hosts.find((h) => h.name === def.host);
  if (!host || !runsOnHost(ctx, host)) return undefined;
  const exec = await localShellExecution(ctx, cluster, host);
  return new vscode.Task(
    def,
    vscode.TaskScope.Workspace,
    `provision etcd on ${host.name} (this host)`,
    'k3s-etcd',
    exec,
  );
}

export function registerProvisionTasks(ctx: ExtensionCtx): void {
  ctx.push(
    vscode.tasks.registerTaskProvider(TASK_TYPE, {
      // In Restricted Mode there are no tasks to offer; one from tasks.json refuses when run.
      provideTasks: () => {
        if (!ctx.trust.trusted) return [];
        const inv = ctx.inventory.current();
        if (inv?.status !== 'ok') return [];
        return inv.inventory.clusters.flatMap((c) => [
          provisionTask(ctx, { type: TASK_TYPE, operation: 'provision-etcd', cluster: c.name }),
          ...etcdHosts(c).map((h) =>
            provisionTask(ctx, {
              type: TASK_TYPE,
              operation: 'provision-etcd',
              cluster: c.name,
              host: h.name,
            }),
          ),
          ...(k3sServers(c).length > 0
            ? [provisionTask(ctx, { type: TASK_TYPE, operation: 'install-k3s', cluster: c.name })]
            : []),
        ]);
      },
      resolveTask: (task) => {
        const def = task.definition as K3sEtcdTaskDefinition;
        if (def.type !== TASK_TYPE || !OPERATIONS.includes(def.operation) || !def.cluster)
          return undefined;
        return provisionTask(ctx, def, task.scope ?? vscode.TaskScope.Workspace);
      },
    }),
  );
}

/** Runs the task for a cluster or host: in the host's terminal under Remote-SSH, else over SSH. */
export async function runProvisionTask(
  ctx: ExtensionCtx,
  cluster: string,
  host?: string,
  operation: TaskOperationName = 'provision-etcd',
): Promise<void> {
  const def: K3sEtcdTaskDefinition = {
    type: TASK_TYPE,
    operation,
    cluster,
    ...(host ? { host } : {}),
  };
  const local = await hostTerminalTask(ctx, def).catch((err: unknown) => {
    ctx.log.warn(`cannot run in this host's terminal: ${errorMessage(err)}`);
    return undefined;
  });
  await vscode.tasks.executeTask(local ?? provisionTask(ctx, def));
}

/**
 * Runs the restore of `plan` as a task, after the editor's modal confirmed it (the task then
 * runs at once with that plan, like the CLI's `--yes`).
 */
export async function runConfirmedRestoreTask(ctx: ExtensionCtx, plan: RestorePlan): Promise<void> {
  confirmedRestores.set(restoreKey(plan.cluster, plan.file), plan);
  try {
    await vscode.tasks.executeTask(
      provisionTask(ctx, {
        type: TASK_TYPE,
        operation: 'restore-etcd',
        cluster: plan.cluster,
        snapshot: plan.file,
      }),
    );
  } catch (err) {
    confirmedRestores.delete(restoreKey(plan.cluster, plan.file));
    throw err;
  }
}
