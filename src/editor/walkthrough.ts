/**
 * Keeps the walkthrough's steps ticked whichever way a step was done (see walkthroughSteps.ts
 * for why VS Code's own completion events are not enough): sets the state context keys from the
 * inventory, the certificate manifests and live health, and marks a step complete with VS Code's
 * `welcome.markStepComplete` when its state holds or one of its commands finished. VS Code keeps
 * the mark in the profile, also when the walkthrough service wakes up only later.
 */
import * as vscode from 'vscode';
import { errorMessage } from '../core/errors';
import { CONTEXT_KEYS, type CommandKey } from '../shared/commands';
import type { ExtensionCtx } from './ctx';
import { qualifiedStepId, stepsRunBy, WALKTHROUGH_STEPS } from './walkthroughSteps';

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
  const values = new Map<string, boolean>();
  /** A state key's value; the inventory service sets its own key, the others are set here. */
  const stateIs = (key: string, value: boolean, setContext = true) => {
    if (values.get(key) === value) return;
    values.set(key, value);
    if (setContext) void vscode.commands.executeCommand('setContext', key, value);
    if (value)
      for (const step of WALKTHROUGH_STEPS) if (step.state === key) markStepDone(ctx.log, step.id);
  };
  ctx.push(
    ctx.inventory.onDidChange((result) => {
      stateIs(CONTEXT_KEYS.inventoryPresent, result.status !== 'missing', false);
      const indexes = [...ctx.inventory.pkiIndexes().values()];
      stateIs(
        CONTEXT_KEYS.hasCertificates,
        indexes.some((index) => index?.entries.some((e) => e.kind !== 'ca') ?? false),
      );
    }),
    ctx.health.onDidChange(() => {
      const states = [...ctx.health.states().values()];
      stateIs(
        CONTEXT_KEYS.provisioned,
        states.some((h) => (h.snapshot?.members.length ?? 0) > 0),
      );
    }),
  );
}

/** A command finished: the steps it performs are done. */
export function recordCommandRan(ctx: ExtensionCtx, command: CommandKey): void {
  for (const step of stepsRunBy(command)) markStepDone(ctx.log, step.id);
}
