/**
 * Keeps the walkthrough's steps ticked whichever way a step was done (see walkthroughSteps.ts
 * for why VS Code's own completion events are not enough): sets the state context keys from the
 * inventory, the certificate manifests, live health and provisioning tasks that ended with exit
 * code 0, and marks a step complete with VS Code's `welcome.markStepComplete` when `stepsDone`
 * says so (its state holds, or one of its commands finished without an error). VS Code keeps the
 * mark in the profile, also when the walkthrough service wakes up only later.
 */
import * as vscode from 'vscode';
import { errorMessage } from '../core/errors';
import { CONTEXT_KEYS, type CommandKey } from '../shared/commands';
import type { ExtensionCtx } from './ctx';
import { provisionedByTask, qualifiedStepId, stepsDone } from './walkthroughSteps';

const MARK_STEP_COMPLETE = 'welcome.markStepComplete';

/** Idempotent: VS Code ignores a step already done. */
function markStepDone(log: vscode.LogOutputChannel, stepId: string): void {
  // Before VS Code has registered the walkthrough the command stores the mark and then throws
  // "step which does not exist": the mark still counts once the walkthrough is registered.
  vscode.commands.executeCommand(MARK_STEP_COMPLETE, qualifiedStepId(stepId)).then(
    () => log.debug(`Walkthrough: step ${stepId} done`),
    (err: unknown) => log.debug(`Walkthrough: marking ${stepId} done: ${errorMessage(err)}`),
  );
}

/** At activation: the state keys, kept current, and the steps whose state already holds. */
export function registerWalkthroughProgress(ctx: ExtensionCtx): void {
  const values: Record<string, boolean> = {};
  const marked = new Set<string>();
  /** A provisioning task ended with exit code 0 in this window. */
  let provisionedByRun = false;
  /** A state key's value; the inventory service sets its own key, the others are set here. */
  const stateIs = (key: string, value: boolean, setContext = true) => {
    if (values[key] === value) return;
    values[key] = value;
    if (setContext) void vscode.commands.executeCommand('setContext', key, value);
    for (const id of stepsDone(values)) {
      if (marked.has(id)) continue;
      marked.add(id);
      markStepDone(ctx.log, id);
    }
  };
  const provisioned = () =>
    provisionedByRun ||
    [...ctx.health.states().values()].some((h) => (h.snapshot?.members.length ?? 0) > 0);
  ctx.push(
    ctx.inventory.onDidChange((result) => {
      stateIs(CONTEXT_KEYS.inventoryPresent, result.status !== 'missing', false);
      const indexes = [...ctx.inventory.pkiIndexes().values()];
      stateIs(
        CONTEXT_KEYS.hasCertificates,
        indexes.some((index) => index?.entries.some((e) => e.kind !== 'ca') ?? false),
      );
    }),
    ctx.health.onDidChange(() => stateIs(CONTEXT_KEYS.provisioned, provisioned())),
    // Provisioned once a Provision etcd task ended well, not when it started (it may be declined
    // or fail).
    vscode.tasks.onDidEndTaskProcess((e) => {
      if (!provisionedByTask(e.execution.task.definition, e.exitCode)) return;
      provisionedByRun = true;
      stateIs(CONTEXT_KEYS.provisioned, true);
    }),
  );
}

/** A command of the table finished (`ok`: without an error): the steps it performs are done. */
export function recordCommandRan(ctx: ExtensionCtx, command: CommandKey, ok: boolean): void {
  for (const id of stepsDone({}, { command, ok })) markStepDone(ctx.log, id);
}
