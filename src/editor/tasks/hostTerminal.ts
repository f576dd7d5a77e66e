/**
 * Under Remote-SSH, connected to the host itself: provisioning as a `ShellExecution` of the same
 * script in the host's own terminal (sudo asks there).
 */
import * as vscode from 'vscode';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import type { Cluster, Host } from '../../core/inventory/types';
import { checkFacts, factsCommand, parseFacts } from '../../core/etcd/memberHost';
import { initialClusterOf } from '../../core/inventory/select';
import { planMember } from '../../core/provision/provision';
import { asRootIfPossible, terminalCommand } from '../../core/plan/local';
import { renderScript } from '../../core/plan/render';
import type { ExtensionCtx } from '../ctx';
import { clusterNamed } from '../pick';
import { thisHostOf } from '../thisHost';
import type { K3sEtcdTaskDefinition } from './definition';

/**
 * Whether this window's extension host runs on `host`, for any remote kind: decided from
 * identities (core/thisHost), not from `vscode.env.remoteName`.
 */
async function runsOnHost(ctx: ExtensionCtx, cluster: Cluster, host: Host): Promise<boolean> {
  return (await thisHostOf(ctx, cluster)).local === host.name;
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

/** For Remote-SSH: the same operation in the host's own terminal. */
export async function hostTerminalTask(
  ctx: ExtensionCtx,
  def: K3sEtcdTaskDefinition,
): Promise<vscode.Task | undefined> {
  if (!def.host || def.operation !== 'provision-etcd') return undefined;
  const cluster = clusterNamed(ctx, def.cluster);
  const host = cluster.hosts.find((h) => h.name === def.host);
  if (!host || !(await runsOnHost(ctx, cluster, host))) return undefined;
  const exec = await localShellExecution(ctx, cluster, host);
  return new vscode.Task(
    def,
    vscode.TaskScope.Workspace,
    `provision etcd on ${host.name} (this host)`,
    'k3s-etcd',
    exec,
  );
}
